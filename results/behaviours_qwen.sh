#!/bin/sh
# Issue 11: qwen2.5-coder-0.5b (24 layers: the paper's 10 / 15 are 8 / 11) at the sizes two CPU cores allow:
# the paper's splits, 200 vector pairs, 60 label-balanced test questions (every rotation), single x+-1
# relative, simultaneous with 9 coefficients. One mode per invocation. Resumable.
# Usage: OMP_NUM_THREADS=1 nohup sh results/behaviours_qwen.sh letter >> results/behaviours_run_qwen.log 2>&1 &
set -e
mode=${1:?letter or content}
cd "$(dirname "$0")/.."
D=${STEER_TRACE_PAPER_SETS:-../shared/data/extending-activation-addition/data/datasets}
cli() { echo "== $(date -u +%H:%M:%S) behaviours $*"; PYTHONPATH=$PWD .venv/bin/python -m tasks.cli behaviours "$@"; }
Q="--profile paper --scoring $mode --vector-source $mode --results results --model qwen2.5-coder-0.5b --split paper --data-dir $D --n-vector 200 --n-validation 30 --n-test 60"
cli extract $Q
cli single $Q --relative --layers 8,11 --add-mult 1 --subtract-mult 1
cli simultaneous $Q --relative --coefs=-1.2,-0.6,-0.3,-0.1,0,0.1,0.3,0.6,1.2 --tax-docs 8
echo "== $(date -u +%H:%M:%S) done"
