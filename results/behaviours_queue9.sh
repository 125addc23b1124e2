#!/bin/sh
# Issue 11, ninth queue (one core; replaces queue7's tail): after the running letter diagnose, letter combined
# at layer 14 (the paper combined at its layer 15), then diagnose again - its vector quality now measures the
# letter-balanced vector as built (a new result key; the plain sign-flip null had no power on letter pairs).
# Each step retried once. Usage: OMP_NUM_THREADS=1 nohup sh results/behaviours_queue9.sh [PID] >> results/behaviours_queue.log 2>&1 &
cd "$(dirname "$0")/.."
if [ -n "$1" ]; then while kill -0 "$1" 2>/dev/null; do sleep 30; done; fi
D=${STEER_TRACE_PAPER_SETS:-../shared/data/extending-activation-addition/data/datasets}
run() {
  echo "== $(date -u +%H:%M:%S) behaviours $*"
  PYTHONPATH=$PWD .venv/bin/python -m tasks.cli behaviours "$@" --profile paper --split paper --data-dir "$D" \
    --scoring letter --vector-source letter --n-vector 500 --n-validation 30 --n-test 100 --results results
}
retry() { "$@" || { echo "== $(date -u +%H:%M:%S) retry: $*"; "$@"; }; }
retry run combined --relative --layers 14 --add-mult 1 --subtract-mult 1 >> results/behaviours_run_letter.log 2>&1
retry run diagnose >> results/behaviours_run_letter.log 2>&1
echo "== $(date -u +%H:%M:%S) queue9 done"
