#!/bin/sh
# Issue 11: the paper's own protocol on smollm2-135m: plain mean over its 500 vector pairs (not
# letter-balanced), each test question in its given order, the paper's test rows as split (300), letter
# scoring; single x+-1 relative at the paper's layers 10 / 15 (9 / 14 here). What the paper's protocol
# would report here, beside the balanced / rotated runs. Resumable.
# Usage: OMP_NUM_THREADS=1 nohup sh results/behaviours_plain_mean.sh >> results/behaviours_run_plain_mean.log 2>&1 &
set -e
cd "$(dirname "$0")/.."
D=${STEER_TRACE_PAPER_SETS:-../shared/data/extending-activation-addition/data/datasets}
cli() { echo "== $(date -u +%H:%M:%S) behaviours $*"; PYTHONPATH=$PWD .venv/bin/python -m tasks.cli behaviours "$@"; }
P="--profile paper --split paper --data-dir $D --results results --plain-mean --orders given --slices plain --n-vector 500 --n-validation 30 --n-test 300"
cli extract $P
cli single $P --relative --layers 9,14 --add-mult 1 --subtract-mult 1
echo "== $(date -u +%H:%M:%S) done"
