#!/bin/sh
# The paper's protocol in letter mode on qwen2.5-coder-1.5b (28 layers: the paper's 10 / 15 of 32 are 9 / 13),
# the first embedded model whose letter answers follow the options (its precondition, measured by hand once:
# 0.58-0.92 against chance 0.50), in bfloat16:
#   make models-large && sh runs/behaviours_qwen15.sh [step ...]
# The paper's splits, 200 vector pairs (letter-balanced), 60 label-balanced test questions in both orders,
# single at layers 9 / 13 at the strengths a validation grid picks, then 9 more random directions per point (10 distinct in all),
# combined (sum, mean, weighted) at layer 13 with the same picks, simultaneous (five consecutive layers, one global
# coefficient, |c| <= 0.4: single answers collapse from 0.4-0.8 at one layer).
# Writes: behaviours_precondition (precondition); behaviours_vectors, _cosines, _components (extract);
# _single (single, draws); _combined (combined); _simultaneous + _tax (simultaneous).
# Steps (default, in order): precondition extract single simultaneous simultaneous-controls combined draws; wealth, wealth-small (a small
# first look, not in the default). Resumable: every point is cached.
# Measured 2026-12-07, one torch thread, nice 10, 2 cores shared (load 5-8): precondition 584 s (20 parts of 16
# questions); `python -m benchmarks.throughput` (docs/bench.md): the 1.5B scores 69 prompt tokens/s there, 2.9x
# the 0.5B's time, and generates 1.1 new tokens/s at batch 8.
set -e
steps=${*:-precondition extract single simultaneous simultaneous-controls combined draws}
cd "$(dirname "$0")/.."
D=${STEER_TRACE_PAPER_SETS:-../shared/data/extending-activation-addition/data/datasets}
ST=${STEER_TRACE:-.venv/bin/steer-trace}  # the command (default: the Makefile's venv)
R=${RESULTS:-results}                    # the results folder (default: the committed one)
run() {
  echo "== $(date -u +%H:%M:%S) behaviours $*"
  cmd=$1; shift  # the step's own options come last, so they override the sizes
  "$ST" behaviours "$cmd" --profile paper --split paper --data-dir "$D" --model qwen2.5-coder-1.5b --dtype bfloat16 \
    --n-vector 200 --n-validation 30 --n-test 60 --results "$R" "$@"
}
L="--scoring letter --vector-source letter"
# single / draws: the strength of each behaviour, layer and sign picked on the validation split (30 questions, both
# orders) from fractions of the residual norm, a direction stopped where its answers collapse onto one letter
# (>= 95%) or turn faulty (> 5%), and no point picked whose answers keep under half the unsteered answer mass;
# at x1 the answers collapse (the `wealth` step), so the grid stops below it
S="$L --relative --coefs=-0.4,-0.2,-0.1,-0.05,0,0.05,0.1,0.2,0.4"
# simultaneous-controls: the paired random control at the inner coefficients too (at +-0.4 the answers leave A/B)
G="$L --relative --layers 9,13 --grid-layers 9,13 --grid-coefs 0.05,0.1,0.2,0.4,0.8"
for step in $steps; do
  case $step in
    precondition) run precondition ;;
    extract) run extract $L ;;
    single) run single $G ;;
    draws) run single $G --more-random 9 --random-signs add ;;
    combined) run combined $G --layers 13 --coefs 0.1 ;;  # x0.1: the median of the single picks at layer 13
    wealth)  # a first look: wealth-seeking alone (its precondition passes), layers 9 / 13, x+-1: the vector and its
             # paired random control, then 9 more random directions at +1 (10 distinct in all)
      W="$L --relative --layers 9,13 --add-coef 1 --subtract-coef 1 --behaviours wealth_seeking"
      run single $W
      run single $W --more-random 9 --random-signs add ;;
    wealth-small)  # the same at x+-0.4, layer 9 only (at x1 the answers collapse toward one letter)
      W="$L --relative --layers 9 --add-coef 0.4 --subtract-coef 0.4 --behaviours wealth_seeking"
      run single $W
      run single $W --more-random 9 --random-signs add ;;
    simultaneous) run simultaneous $S --tax-docs 8 ;;
    simultaneous-controls) run simultaneous $S --tax-docs 8 --controls-at=-0.2,-0.1,-0.05,0.05,0.1,0.2 ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
echo "== $(date -u +%H:%M:%S) done ($steps)"
