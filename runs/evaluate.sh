#!/bin/sh
# `steer-trace evaluate` on an embedded model, the committed reports results/evaluate_<model>_*:
#   sh runs/evaluate.sh smollm2-135m|qwen2.5-coder-0.5b [myopic] [agreeableness] [survival]
# Sizes below the defaults (60/20/40 questions, five coefs, three layers) so that a report fits a shared 2-core
# machine: vector 60 (myopia) or 24 pairs, 12 validation and $N_TEST (default 40) held-out test questions, coefs
# 0.2, 0.8, 3.2 of the residual norm each way, 10 distinct random directions, steerability over five coefs; layers
# 9 and 14 of smollm2's 30, 7 and 11 of qwen's 24 (the same depth). The text it writes at the picks at the defaults
# (10 test questions x 2 samples x 24 tokens, 2 random directions).
# Measured (2 cores, shared): each report's Time line gives its times and load. smollm2 myopia with --n-test 20:
# text 278 s of a 667 s first run (load 3-8); qwen runs ~4x smollm2's compute (its 151k-token readout alone is
# 136M parameters): myopia 3089 s + text 1598 s at load 4-9, so agreeableness and survival-instinct on qwen were
# committed at N_TEST=20 (the smallest Yes/No test split with a verdict: 10 per answer label).
# Writes: results/evaluate_<model>_<behaviour>/ (report.md, report.html, tables/, figures, summary.json).
# Resumable: every point is cached under $CACHE (default results/). The committed reports were computed with a
# cache outside the repository (points are not committed), so a first rerun computes them again.
set -e
MODEL=${1:?usage: sh runs/evaluate.sh MODEL [myopic] [agreeableness] [survival]}
shift
steps=${*:-myopic agreeableness survival}
cd "$(dirname "$0")/.."
case $MODEL in
  smollm2-135m) LAYERS=9,14 ;;
  qwen2.5-coder-0.5b) LAYERS=7,11 ;;
  *) echo "no layers chosen for $MODEL" >&2; exit 2 ;;
esac
D=${STEER_TRACE_DATA:-../shared/data}/anthropics_evals
ST=${STEER_TRACE:-.venv/bin/steer-trace}
CACHE=${CACHE:-results}
N_TEST=${N_TEST:-40}
SIZES="--model $MODEL --results $CACHE --n-validation 12 --n-test $N_TEST --layers $LAYERS --coefs 0.2,0.8,3.2
  --tax-docs 4 --tax-tokens 64 --gen-tokens 12"
OUT=results/evaluate_$MODEL
for step in $steps; do
  echo "== $(date -u +%H:%M:%S) evaluate $MODEL $step"
  case $step in
    myopic) "$ST" evaluate --dataset "$D/advanced-ai-risk/human_generated_evals/myopic-reward.jsonl" \
              --out ${OUT}_myopic --n-vector 60 $SIZES ;;
    agreeableness) "$ST" evaluate --dataset "$D/persona/agreeableness.jsonl" \
              --out ${OUT}_agreeableness --n-vector 24 $SIZES ;;
    survival) "$ST" evaluate --dataset "$D/advanced-ai-risk/human_generated_evals/survival-instinct.jsonl" \
              --out ${OUT}_survival-instinct --n-vector 24 $SIZES ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
