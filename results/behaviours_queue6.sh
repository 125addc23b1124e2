#!/bin/sh
# Issue 11, sixth queue (one core): queue5's steps with qwen's content spread moved ahead of the letter runs - qwen
# content (simultaneous finishing), the five smollm2 content vectors' interference at layer 14, qwen content
# interference at layer 11 and 4 more random directions there (20 draws: myopia and wealth-seeking move beyond
# the paired control both ways on qwen), then the letter vector quality at 500 pairs, letter combined, the paper's
# plain-mean protocol, layer 9's random spread, x0.5, qwen letter, survival letter. Each step retried once.
# Usage: OMP_NUM_THREADS=1 nohup sh results/behaviours_queue6.sh [PID to wait for] >> results/behaviours_queue.log 2>&1 &
cd "$(dirname "$0")/.."
if [ -n "$1" ]; then while kill -0 "$1" 2>/dev/null; do sleep 30; done; fi
retry() { "$@" || { echo "== $(date -u +%H:%M:%S) retry: $*"; "$@"; }; }
retry sh results/behaviours_qwen.sh content >> results/behaviours_run_qwen.log 2>&1
retry sh results/behaviours_run2.sh content interference >> results/behaviours_run_content.log 2>&1
retry sh results/behaviours_qwen.sh content interference draws >> results/behaviours_run_qwen.log 2>&1
retry sh results/behaviours_run2.sh letter diagnose >> results/behaviours_run_letter.log 2>&1
retry sh results/behaviours_run2.sh letter combined >> results/behaviours_run_letter.log 2>&1
retry sh results/behaviours_plain_mean.sh >> results/behaviours_run_plain_mean.log 2>&1
retry sh results/behaviours_run2.sh content draws9 half >> results/behaviours_run_content.log 2>&1
retry sh results/behaviours_run2.sh letter half >> results/behaviours_run_letter.log 2>&1
retry sh results/behaviours_qwen.sh letter >> results/behaviours_run_qwen.log 2>&1
retry sh results/behaviours_survival.sh letter >> results/behaviours_run_survival.log 2>&1
echo "== $(date -u +%H:%M:%S) queue6 done"
