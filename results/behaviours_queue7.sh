#!/bin/sh
# Issue 11, seventh queue (the second core, the skills queue paused): the letter steps that the README's
# behaviour section still lacks - letter vector quality's remaining part (diagnose), then letter combined at
# layers 14 and 9. queue6 reaches the same steps later and finds them cached. Each step retried once.
# Usage: OMP_NUM_THREADS=1 nohup sh results/behaviours_queue7.sh >> results/behaviours_queue.log 2>&1 &
cd "$(dirname "$0")/.."
retry() { "$@" || { echo "== $(date -u +%H:%M:%S) retry: $*"; "$@"; }; }
retry sh results/behaviours_run2.sh letter diagnose >> results/behaviours_run_letter.log 2>&1
retry sh results/behaviours_run2.sh letter combined >> results/behaviours_run_letter.log 2>&1
echo "== $(date -u +%H:%M:%S) queue7 done"
