#!/bin/sh
# Issue 11, fifth queue (one core): queue4's remaining steps, each retried once (a step killed mid-run - e.g. by
# nnsight reading a source file edited under it - resumes from the cache on the retry): qwen content (single +
# simultaneous after its extract), the five content vectors' interference at layer 14, the letter vector quality at 500 pairs (killed in queue4), letter combined, the
# paper's plain-mean protocol, layer 9's random spread, x0.5, qwen letter, survival letter. Resumable.
# Usage: OMP_NUM_THREADS=1 nohup sh results/behaviours_queue5.sh [PID to wait for] >> results/behaviours_queue.log 2>&1 &
cd "$(dirname "$0")/.."
if [ -n "$1" ]; then while kill -0 "$1" 2>/dev/null; do sleep 30; done; fi
retry() { "$@" || { echo "== $(date -u +%H:%M:%S) retry: $*"; "$@"; }; }
retry sh results/behaviours_qwen.sh content >> results/behaviours_run_qwen.log 2>&1
retry sh results/behaviours_run2.sh content interference >> results/behaviours_run_content.log 2>&1
retry sh results/behaviours_run2.sh letter diagnose >> results/behaviours_run_letter.log 2>&1
retry sh results/behaviours_run2.sh letter combined >> results/behaviours_run_letter.log 2>&1
retry sh results/behaviours_plain_mean.sh >> results/behaviours_run_plain_mean.log 2>&1
retry sh results/behaviours_run2.sh content draws9 half >> results/behaviours_run_content.log 2>&1
retry sh results/behaviours_run2.sh letter half >> results/behaviours_run_letter.log 2>&1
retry sh results/behaviours_qwen.sh letter >> results/behaviours_run_qwen.log 2>&1
retry sh results/behaviours_survival.sh letter >> results/behaviours_run_survival.log 2>&1
echo "== $(date -u +%H:%M:%S) queue5 done"
