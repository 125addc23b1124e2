#!/bin/sh
# The behaviours study on qwen2.5-coder-0.5b (24 layers: the paper's 10 / 15 are 8 / 11) at the sizes two CPU
# cores allow, content mode (its letter answers follow the position, like smollm2's):
#   sh runs/behaviours_qwen.sh [step ...]
# The paper's splits, 200 vector pairs, 60 label-balanced test questions, single x+-1 relative at layers 8 / 11,
# simultaneous at layers 8-12 with 9 coefficients and the tax on 8 documents.
# Writes: behaviours_vectors, _cosines, _components (extract); _precondition (precondition); _single (single);
# _simultaneous + _tax (simultaneous).
# Steps (default, in order): extract precondition single simultaneous. Resumable: every point is cached.
# Not run to the end: draws (the spread for the myopia / wealth claims: 9 more equal-norm random directions per
# point at layers 11 and 8, each at +1 only - d at +1 is -d at -1, a draw for both rows -, 20 points per layer;
# ~58 s a point on a free core; started 16:17 beside a load of 25-29 on 2 cores, its first call (myopia at
# layer 11: unsteered + 9 directions) took 86 min at ~5% of a core and landed 17:42, the rest is cached as it
# lands): `sh runs/behaviours_qwen.sh draws` resumes it. And interference (every vector x every behaviour at layer 11, x+-1; its first 16 points are
# cached under behaviours_interference/, no table yet): `sh runs/behaviours_qwen.sh interference` resumes it.
# Measured on one core at load ~3: extract 21 min, precondition 12 min, single 43 min, simultaneous 63 min.
set -e
steps=${*:-extract precondition single simultaneous}
cd "$(dirname "$0")/.."
D=${STEER_TRACE_PAPER_SETS:-../shared/data/extending-activation-addition/data/datasets}
ST=${STEER_TRACE:-.venv/bin/steer-trace}  # the command (default: the Makefile's venv)
R=${RESULTS:-results}                    # the results folder (default: the committed one)
run() {
  echo "== $(date -u +%H:%M:%S) behaviours $*"
  "$ST" behaviours "$@" --profile paper --split paper --data-dir "$D" --model qwen2.5-coder-0.5b \
    --n-vector 200 --n-validation 30 --n-test 60 --results "$R"
}
C="--scoring content --vector-source content"
for step in $steps; do
  case $step in
    extract) run extract $C ;;
    precondition) run precondition ;;
    single) run single $C --relative --layers 8,11 --add-coef 1 --subtract-coef 1 ;;
    draws) for L in 11 8; do  # 9 more random directions per myopia / wealth point, +1 only: 10 distinct with 'random'
             run single $C --relative --layers $L --add-coef 1 --subtract-coef 1 --behaviours myopic,wealth_seeking \
               --more-random 9 --random-signs add
           done ;;
    simultaneous) run simultaneous $C --relative --coefs=-1.2,-0.6,-0.3,-0.1,0,0.1,0.3,0.6,1.2 --tax-docs 8 ;;
    interference) run interference $C --relative --layers 11 --coefs=-1,1 ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
echo "== $(date -u +%H:%M:%S) done ($steps)"
