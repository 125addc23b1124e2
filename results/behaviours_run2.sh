#!/bin/sh
# The behaviour runs of issue 11 on smollm2-135m, one mode per invocation (letter | content: the scoring
# and the vector source): the paper's splits and 500 vector pairs, 100 label-balanced test questions
# (every rotation), the paper's layers 10 and 15 of 32 (9 and 14 here); multipliers relative to the
# layer's residual norm (--relative), fixed (no grid), so both modes add vectors of the same size.
# Steps (default: all, in this order): extract single simultaneous diagnose half combined
# (and, asked by name: draws / draws9 - five more random directions per point at layer 14 / 9, for the spread;
# interference - every vector x every behaviour at layer 14, x+-1; combined14 / combined9 - one layer of combined)
# Resumable: every point is cached, rerunning recomputes nothing that finished.
# Usage: OMP_NUM_THREADS=1 nohup sh results/behaviours_run2.sh letter [step ...] >> results/behaviours_run_letter.log 2>&1 &
set -e
mode=${1:?letter or content}
shift
steps=${*:-extract single simultaneous diagnose half combined}
cd "$(dirname "$0")/.."
D=${STEER_TRACE_PAPER_SETS:-../shared/data/extending-activation-addition/data/datasets}
run() {
  echo "== $(date -u +%H:%M:%S) behaviours $*"
  PYTHONPATH=$PWD .venv/bin/python -m tasks.cli behaviours "$@" --profile paper --split paper --data-dir "$D" \
    --scoring "$mode" --vector-source "$mode" --n-vector 500 --n-validation 30 --n-test 100 --results results
}
SIM="0,0.02,0.05,0.1,0.15,0.2,0.3,0.4,0.6,0.8,1.2,-0.02,-0.05,-0.1,-0.15,-0.2,-0.3,-0.4,-0.6,-0.8,-1.2"
for step in $steps; do
  case $step in
    extract) run extract ;;
    single) run single --relative --layers 9,14 --add-mult 1 --subtract-mult 1 ;;
    simultaneous) run simultaneous --relative --coefs "$SIM" --tax-docs 16 ;;
    diagnose) run diagnose ;;
    half) run single --relative --layers 9,14 --add-mult 0.5 --subtract-mult 0.5 ;;
    draws) run single --relative --layers 14 --add-mult 1 --subtract-mult 1 --more-random 5 ;;
    draws9) run single --relative --layers 9 --add-mult 1 --subtract-mult 1 --more-random 5 ;;
    interference) run interference --relative --layers 14 --multipliers=-1,1 ;;
    combined) run combined --relative --layers 14 --add-mult 1 --subtract-mult 1
              run combined --relative --layers 9 --add-mult 1 --subtract-mult 1 ;;
    combined14) run combined --relative --layers 14 --add-mult 1 --subtract-mult 1 ;;
    combined9) run combined --relative --layers 9 --add-mult 1 --subtract-mult 1 ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
echo "== $(date -u +%H:%M:%S) done ($mode: $steps)"
