#!/bin/sh
# The paper's protocol in letter mode on qwen2.5-coder-1.5b (28 layers: the paper's 10 / 15 of 32 are 9 / 13),
# the first embedded model whose letter answers follow the options (its precondition, measured by hand once:
# 0.58-0.92 against chance 0.50), in bfloat16:
#   make models-large && sh runs/behaviours_qwen15.sh [step ...]
# The paper's splits, 200 vector pairs (letter-balanced), 60 label-balanced test questions in both orders,
# single x+-1 relative at layers 9 / 13, then 9 more random directions per point (10 distinct in all),
# combined (sum, mean, weighted) at layer 13, simultaneous (five consecutive layers, one global coefficient).
# Writes: behaviours_precondition (precondition); behaviours_vectors, _cosines, _components (extract);
# _single (single, draws); _combined (combined); _simultaneous + _tax (simultaneous).
# Steps (default, in order): precondition extract single draws combined simultaneous. Resumable: every point is
# cached. NOT RUN YET: the machine this was written on was shared by eight sessions (load 25-30), where one
# nice-19 process got ~1.5 % of a core. By hand: ~24-34 generated tokens/s in bfloat16 at load 7-12;
# `python -m benchmarks.throughput` measures plain and steered tokens/s of the scoring these steps run.
set -e
steps=${*:-precondition extract single draws combined simultaneous}
cd "$(dirname "$0")/.."
D=${STEER_TRACE_PAPER_SETS:-../shared/data/extending-activation-addition/data/datasets}
ST=${STEER_TRACE:-.venv/bin/steer-trace}  # the command (default: the Makefile's venv)
R=${RESULTS:-results}                    # the results folder (default: the committed one)
run() {
  echo "== $(date -u +%H:%M:%S) behaviours $*"
  "$ST" behaviours "$@" --profile paper --split paper --data-dir "$D" --model qwen2.5-coder-1.5b --dtype bfloat16 \
    --n-vector 200 --n-validation 30 --n-test 60 --results "$R"
}
L="--scoring letter --vector-source letter"
for step in $steps; do
  case $step in
    precondition) run precondition ;;
    extract) run extract $L ;;
    single) run single $L --relative --layers 9,13 --add-coef 1 --subtract-coef 1 ;;
    draws) run single $L --relative --layers 9,13 --add-coef 1 --subtract-coef 1 --more-random 9 ;;
    combined) run combined $L --relative --layers 13 --coefs 1 ;;
    simultaneous) run simultaneous $L --relative --coefs=-1.2,-0.6,-0.3,-0.1,0,0.1,0.3,0.6,1.2 --tax-docs 8 ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
echo "== $(date -u +%H:%M:%S) done ($steps)"
