#!/bin/sh
# The rest of issue 11's behaviour runs on one core (after combined at layer 9), most informative first:
# more random directions at layer 14 (the spread a vector's shift is ranked in), x0.5, the many-option file,
# qwen in content mode, then letter mode, the plain-mean protocol, qwen letter, survival letter. Resumable.
# Usage: OMP_NUM_THREADS=1 nohup sh results/behaviours_queue2.sh [PID to wait for] >> results/behaviours_queue.log 2>&1 &
cd "$(dirname "$0")/.."
if [ -n "$1" ]; then while kill -0 "$1" 2>/dev/null; do sleep 30; done; fi
sh results/behaviours_run2.sh content combined draws half >> results/behaviours_run_content.log 2>&1
sh results/behaviours_survival.sh content >> results/behaviours_run_survival.log 2>&1
sh results/behaviours_qwen.sh content >> results/behaviours_run_qwen.log 2>&1
sh results/behaviours_run2.sh content draws9 >> results/behaviours_run_content.log 2>&1
sh results/behaviours_run2.sh letter extract single simultaneous diagnose combined half >> results/behaviours_run_letter.log 2>&1
sh results/behaviours_plain_mean.sh >> results/behaviours_run_plain_mean.log 2>&1
sh results/behaviours_qwen.sh letter >> results/behaviours_run_qwen.log 2>&1
sh results/behaviours_survival.sh letter >> results/behaviours_run_survival.log 2>&1
echo "== $(date -u +%H:%M:%S) queue2 done"
