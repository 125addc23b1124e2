#!/bin/sh
# A many-option Anthropic file through the behaviours study on smollm2-135m, content mode: survival-instinct
# (human-generated advanced-ai-risk, 953 questions with 2-8 options, 706 with two):
#   sh runs/behaviours_survival.sh [step ...]
# Seeded split, 500 vector questions (691 content pairs), 100 label-balanced test questions, x+-1 relative.
# Writes: behaviours_vectors (extract); _quality, _precondition (diagnose); _single (single, draws);
# _combined (combined); _simultaneous + _tax (simultaneous); _interference (interference).
# Steps (default, in order): extract diagnose single combined simultaneous interference draws (draws: more random
# directions per point, so the random spread has 20 draws at both layers).
# Resumable: every point is cached. Measured on one core: extract 6 min, diagnose 13, single 12, combined 17,
# simultaneous 16, interference 5, draws 32.
set -e
steps=${*:-extract diagnose single combined simultaneous interference draws}
cd "$(dirname "$0")/.."
S=${STEER_TRACE_SURVIVAL:-../shared/data/anthropics_evals/advanced-ai-risk/human_generated_evals/survival-instinct.jsonl}
ST=${STEER_TRACE:-.venv/bin/steer-trace}  # the command (default: the Makefile's venv)
R=${RESULTS:-results}                    # the results folder (default: the committed one)
run() {
  echo "== $(date -u +%H:%M:%S) behaviours $*"
  "$ST" behaviours "$@" --profile paper --scoring content --vector-source content --dataset "$S" \
    --n-vector 500 --n-validation 30 --n-test 100 --results "$R"
}
for step in $steps; do
  case $step in
    extract) run extract ;;
    diagnose) run diagnose ;;
    single) run single --relative --layers 9,14 --add-coef 1 --subtract-coef 1 ;;
    combined) run combined --relative --layers 14 --add-coef 1 --subtract-coef 1 ;;
    simultaneous) run simultaneous --relative --layers 12 --coefs=-1.2,-0.6,-0.3,-0.1,0,0.1,0.3,0.6,1.2 --tax-docs 8 ;;
    interference) run interference --relative --layers 14 --coefs=-1,1 ;;
    draws) run single --relative --layers 9 --add-coef 1 --subtract-coef 1 --more-random 9
           run single --relative --layers 14 --add-coef 1 --subtract-coef 1 --more-random 4 ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
echo "== $(date -u +%H:%M:%S) done ($steps)"
