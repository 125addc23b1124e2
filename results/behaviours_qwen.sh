#!/bin/sh
# Issue 11: qwen2.5-coder-0.5b (24 layers: the paper's 10 / 15 are 8 / 11) at the sizes two CPU cores allow:
# the paper's splits, 200 vector pairs, 60 label-balanced test questions (every rotation), single x+-1
# relative, simultaneous with 9 coefficients. One mode per invocation. Resumable.
# Steps (default: extract single simultaneous; by name also: interference - every vector x every behaviour at
# layer 11, x+-1, which adds 10 random draws there; draws - 4 more random directions per single point at layer
# 11, so its spread has 20 draws).
# Usage: OMP_NUM_THREADS=1 nohup sh results/behaviours_qwen.sh letter [step ...] >> results/behaviours_run_qwen.log 2>&1 &
set -e
mode=${1:?letter or content}
shift
steps=${*:-extract single simultaneous}
cd "$(dirname "$0")/.."
D=${STEER_TRACE_PAPER_SETS:-../shared/data/extending-activation-addition/data/datasets}
cli() { echo "== $(date -u +%H:%M:%S) behaviours $*"; PYTHONPATH=$PWD .venv/bin/python -m tasks.cli behaviours "$@"; }
Q="--profile paper --scoring $mode --vector-source $mode --results results --model qwen2.5-coder-0.5b --split paper --data-dir $D --n-vector 200 --n-validation 30 --n-test 60"
for step in $steps; do
  case $step in
    extract) cli extract $Q ;;
    single) cli single $Q --relative --layers 8,11 --add-mult 1 --subtract-mult 1 ;;
    simultaneous) cli simultaneous $Q --relative --coefs=-1.2,-0.6,-0.3,-0.1,0,0.1,0.3,0.6,1.2 --tax-docs 8 ;;
    interference) cli interference $Q --relative --layers 11 --multipliers=-1,1 ;;
    draws) cli single $Q --relative --layers 11 --add-mult 1 --subtract-mult 1 --more-random 4 ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
echo "== $(date -u +%H:%M:%S) done ($mode: $steps)"
