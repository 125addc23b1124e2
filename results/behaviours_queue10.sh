#!/bin/sh
# Issue 11's remaining extras (one core), after queues 6-9 of 2026-12-03 (superseded; in git history): letter
# combined at layer 9 (finished, cached), qwen content interference + 20 draws, content draws9 and x0.5, letter
# x0.5, qwen letter, survival letter. Each step retried once; resumable (every point cached).
# Usage: OMP_NUM_THREADS=1 nohup sh results/behaviours_queue10.sh [PID to wait for] >> results/behaviours_queue.log 2>&1 &
cd "$(dirname "$0")/.."
if [ -n "$1" ]; then while kill -0 "$1" 2>/dev/null; do sleep 30; done; fi
retry() { "$@" || { echo "== $(date -u +%H:%M:%S) retry: $*"; "$@"; }; }
retry sh results/behaviours_run2.sh letter combined9 >> results/behaviours_run_letter.log 2>&1
retry sh results/behaviours_qwen.sh content interference draws >> results/behaviours_run_qwen.log 2>&1
retry sh results/behaviours_run2.sh content draws9 half >> results/behaviours_run_content.log 2>&1
retry sh results/behaviours_run2.sh letter half >> results/behaviours_run_letter.log 2>&1
retry sh results/behaviours_qwen.sh letter >> results/behaviours_run_qwen.log 2>&1
retry sh results/behaviours_survival.sh letter >> results/behaviours_run_survival.log 2>&1
echo "== $(date -u +%H:%M:%S) queue10 done"
