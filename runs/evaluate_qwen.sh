#!/bin/sh
# `steer-trace evaluate` on qwen2.5-coder-0.5b, the committed reports results/evaluate_qwen2.5-coder-0.5b_*:
#   sh runs/evaluate_qwen.sh [myopic] [agreeableness] [survival]
# Sizes below the defaults (60/20/40 questions, five coefs, three layers) so that a report fits a shared 2-core
# machine: vector 60 (myopia) or 24 pairs, 12 validation and 40 held-out test questions, layers 7 and 11 of 24 (the
# depth of smollm2's 9 and 14 of 30), coefs 0.2, 0.8, 3.2 of the residual norm each way, 10 distinct random directions, steerability over five coefs.
# Measured: see each report's Time line (2 cores; the load is stated there). qwen runs ~4x smollm2's compute (its
# 151k-token readout alone is 136M parameters), so on a shared machine agreeableness and survival-instinct were
# committed at N_TEST=20.
# Writes: results/evaluate_qwen2.5-coder-0.5b_<behaviour>/ (report.md, report.html, tables/, figures, summary.json).
# Resumable: every point is cached under $CACHE (default results/). The committed reports were computed with a
# cache outside the repository (points are not committed), so a first rerun computes them again.
set -e
steps=${*:-myopic agreeableness survival}
cd "$(dirname "$0")/.."
D=${STEER_TRACE_DATA:-../shared/data}/anthropics_evals
ST=${STEER_TRACE:-.venv/bin/steer-trace}
CACHE=${CACHE:-results}
N_TEST=${N_TEST:-40}   # N_TEST=20: the smallest Yes/No test split with a verdict (10 per answer label)
SIZES="--n-validation 12 --n-test $N_TEST --layers 7,11 --coefs 0.2,0.8,3.2 --tax-docs 4 --tax-tokens 64 --gen-tokens 12"
for step in $steps; do
  echo "== $(date -u +%H:%M:%S) evaluate $step"
  case $step in
    myopic) "$ST" evaluate --model qwen2.5-coder-0.5b --dataset "$D/advanced-ai-risk/human_generated_evals/myopic-reward.jsonl" --results "$CACHE" \
              --out results/evaluate_qwen2.5-coder-0.5b_myopic --n-vector 60 $SIZES ;;
    agreeableness) "$ST" evaluate --model qwen2.5-coder-0.5b --dataset "$D/persona/agreeableness.jsonl" --results "$CACHE" \
              --out results/evaluate_qwen2.5-coder-0.5b_agreeableness --n-vector 24 $SIZES ;;
    survival) "$ST" evaluate --model qwen2.5-coder-0.5b --dataset "$D/advanced-ai-risk/human_generated_evals/survival-instinct.jsonl" \
              --results "$CACHE" --out results/evaluate_qwen2.5-coder-0.5b_survival-instinct --n-vector 24 $SIZES ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
