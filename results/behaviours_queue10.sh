#!/bin/sh
# Issue 11, tenth queue (one core; replaces queue8's tail): after the running plain-mean protocol, letter combined
# at layer 9 (the paper's 10; queue9 does 14), then queue8's extras - qwen content interference + 20 draws,
# content draws9 and x0.5, letter x0.5, qwen letter, survival letter. Each step retried once.
# (--skip-combined after the PID: letter combined at layer 9 runs elsewhere.)
# Usage: OMP_NUM_THREADS=1 nohup sh results/behaviours_queue10.sh [PID [--skip-combined]] >> results/behaviours_queue.log 2>&1 &
cd "$(dirname "$0")/.."
if [ -n "$1" ]; then while kill -0 "$1" 2>/dev/null; do sleep 30; done; fi
D=${STEER_TRACE_PAPER_SETS:-../shared/data/extending-activation-addition/data/datasets}
run() {
  echo "== $(date -u +%H:%M:%S) behaviours $*"
  PYTHONPATH=$PWD .venv/bin/python -m tasks.cli behaviours "$@" --profile paper --split paper --data-dir "$D" \
    --scoring letter --vector-source letter --n-vector 500 --n-validation 30 --n-test 100 --results results
}
retry() { "$@" || { echo "== $(date -u +%H:%M:%S) retry: $*"; "$@"; }; }
if [ "$2" != "--skip-combined" ]; then
  retry run combined --relative --layers 9 --add-mult 1 --subtract-mult 1 >> results/behaviours_run_letter.log 2>&1
fi
retry sh results/behaviours_qwen.sh content interference draws >> results/behaviours_run_qwen.log 2>&1
retry sh results/behaviours_run2.sh content draws9 half >> results/behaviours_run_content.log 2>&1
retry sh results/behaviours_run2.sh letter half >> results/behaviours_run_letter.log 2>&1
retry sh results/behaviours_qwen.sh letter >> results/behaviours_run_qwen.log 2>&1
retry sh results/behaviours_survival.sh letter >> results/behaviours_run_survival.log 2>&1
echo "== $(date -u +%H:%M:%S) queue10 done"
