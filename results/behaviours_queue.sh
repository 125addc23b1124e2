#!/bin/sh
# Every remaining behaviour run of issue 11, one after another on one core, most informative first
# (letter scoring is not testable on either model - `behaviours precondition` - so content runs go first).
# Each script resumes from the cache, so rerunning the queue recomputes nothing that finished.
# Usage: OMP_NUM_THREADS=1 nohup sh results/behaviours_queue.sh [PID to wait for] >> results/behaviours_queue.log 2>&1 &
cd "$(dirname "$0")/.."
if [ -n "$1" ]; then while kill -0 "$1" 2>/dev/null; do sleep 30; done; fi
sh results/behaviours_run2.sh content extract single simultaneous >> results/behaviours_run_content.log 2>&1
sh results/behaviours_run2.sh content combined half >> results/behaviours_run_content.log 2>&1
sh results/behaviours_survival.sh content >> results/behaviours_run_survival.log 2>&1
sh results/behaviours_qwen.sh content >> results/behaviours_run_qwen.log 2>&1
sh results/behaviours_run2.sh letter extract single simultaneous diagnose combined half >> results/behaviours_run_letter.log 2>&1
sh results/behaviours_plain_mean.sh >> results/behaviours_run_plain_mean.log 2>&1
sh results/behaviours_qwen.sh letter >> results/behaviours_run_qwen.log 2>&1
sh results/behaviours_survival.sh letter >> results/behaviours_run_survival.log 2>&1
echo "== $(date -u +%H:%M:%S) queue done"
