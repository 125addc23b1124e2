#!/bin/sh
# Issue 26 point 2: qwen2.5-coder-0.5b's content-mode claims (myopia and wealth-seeking steer both ways at
# layers 8 and 11) rested on one random direction. Nine more equal-norm random directions per point
# ('random#2'..'random#10', each at x+1 only: direction d at +1 is direction -d at -1, so each is a draw for
# the add and the subtract row; ten distinct directions with the paired 'random'), at the committed single
# run's sizes (200 vector pairs, 60 test questions, both orders, relative x+-1). 20 points per layer.
# Layer 11 first, then 8 (each its own resumable run: every point is cached as it lands).
# Usage: OMP_NUM_THREADS=1 nohup nice -n 10 sh results/behaviours_qwen_draws.sh >> results/behaviours_run_qwen_draws.log 2>&1 &
set -e
cd "$(dirname "$0")/.."
D=${STEER_TRACE_PAPER_SETS:-../shared/data/extending-activation-addition/data/datasets}
PY=${PYTHON:-.venv/bin/python}
cli() { echo "== $(date -u +%H:%M:%S) behaviours $*"; PYTHONPATH=$PWD $PY -m tasks.cli behaviours "$@"; }
Q="--profile paper --scoring content --vector-source content --results results --model qwen2.5-coder-0.5b --split paper --data-dir $D --n-vector 200 --n-validation 30 --n-test 60 --behaviours myopic,wealth_seeking"
for L in ${LAYERS:-11 8}; do
  cli single $Q --relative --layers $L --add-mult 1 --subtract-mult 1 --more-random 9 --random-signs add
done
echo "== $(date -u +%H:%M:%S) done (qwen content draws)"
