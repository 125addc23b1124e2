#!/bin/sh
# The behaviours study on smollm2-135m at the paper's sizes, one scoring mode per invocation:
#   sh runs/behaviours_smollm2.sh content|letter [step ...]
# content: options scored by their text, vectors from the answer texts; letter: the paper's A/B letters with
# letter-balanced vectors. The paper's exact splits and its 500 vector pairs per behaviour, 100 label-balanced
# test questions (letters: every rotation), the paper's layers 10 / 15 of 32 (9 / 14 here), multipliers relative
# to the layer's residual norm (x1 = the residual norm) so both modes push equally.
# Writes (results/INDEX.md names each table): behaviours_vectors, _cosines, _components (extract);
# _precondition, _letter_bias, _quality (diagnose); _single (single, draws); _simultaneous + _tax (simultaneous);
# _combined (combined); _interference (interference).
# Steps, in this order by default: extract single simultaneous diagnose combined; content adds interference and
# draws (5 more random directions per point at layer 14, for the random spread).
# Resumable: every point is cached; running a step again computes only what is missing, and with the committed
# results/ nothing.
# Needs the paper's processed sets (STEER_TRACE_PAPER_SETS, default ../shared/data/...). Measured on 2 shared CPU
# cores, one thread per mode (load 2-6): extract 35 min (letter) / 40 min (content), single 34 / 45 min, content
# simultaneous 100 min, letter simultaneous 37 min, letter diagnose ~38 min, combined 33-57 min per layer,
# content interference ~48 min, draws 35 min.
set -e
mode=${1:?content or letter}
shift
case $mode in
  content) steps=${*:-extract single simultaneous diagnose combined interference draws} ;;
  letter) steps=${*:-extract single simultaneous diagnose combined} ;;
  *) echo "mode: content or letter"; exit 2 ;;
esac
cd "$(dirname "$0")/.."
D=${STEER_TRACE_PAPER_SETS:-../shared/data/extending-activation-addition/data/datasets}
ST=${STEER_TRACE:-.venv/bin/steer-trace}  # the command (default: the Makefile's venv)
R=${RESULTS:-results}                    # the results folder (default: the committed one)
run() {
  echo "== $(date -u +%H:%M:%S) behaviours $*"
  "$ST" behaviours "$@" --profile paper --split paper --data-dir "$D" --scoring "$mode" --vector-source "$mode" \
    --n-vector 500 --n-validation 30 --n-test 100 --results "$R"
}
SIM="0,0.02,0.05,0.1,0.15,0.2,0.3,0.4,0.6,0.8,1.2,-0.02,-0.05,-0.1,-0.15,-0.2,-0.3,-0.4,-0.6,-0.8,-1.2"
for step in $steps; do
  case $step in
    extract) run extract ;;
    single) run single --relative --layers 9,14 --add-coef 1 --subtract-coef 1 ;;
    simultaneous) run simultaneous --relative --coefs "$SIM" --tax-docs 16 ;;
    diagnose) run diagnose ;;
    combined) run combined --relative --layers 14 --add-coef 1 --subtract-coef 1
              run combined --relative --layers 9 --add-coef 1 --subtract-coef 1 ;;
    interference) run interference --relative --layers 14 --coefs=-1,1 ;;
    draws) run single --relative --layers 14 --add-coef 1 --subtract-coef 1 --more-random 5 ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
echo "== $(date -u +%H:%M:%S) done ($mode: $steps)"
