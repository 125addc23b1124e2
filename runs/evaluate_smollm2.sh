#!/bin/sh
# `steer-trace evaluate` on smollm2-135m, the committed reports results/evaluate_smollm2-135m_*:
#   sh runs/evaluate_smollm2.sh [myopic] [agreeableness] [survival]
# Sizes below the defaults (60/20/40 questions, five coefs, three layers) so that a report fits a shared 2-core
# machine: vector 60 (myopia) or 24 pairs, 12 validation and 40 held-out test questions, layers 9 and 14, coefs
# 0.2, 0.8, 3.2 of the residual norm each way, 10 distinct random directions, steerability over five coefs.
# The text it writes at the picks at the defaults (10 test questions x 2 samples x 24 tokens, 2 random directions);
# with --n-test 20 on myopia it took 278 s of a 667 s first run (2 cores, load 3-8).
# Measured (2026-12-07, 2 cores shared with up to eight other jobs, load 15-32): myopia's first pass at 16 test
# questions 55 min; the 40-question test stage after it reused the cached vector, quality and search points.
# Writes: results/evaluate_smollm2-135m_<behaviour>/ (report.md, report.html, tables/, figures, summary.json).
# Resumable: every point is cached under $CACHE (default results/). The committed reports were computed with a
# cache outside the repository (points are not committed), so a first rerun computes them again.
set -e
steps=${*:-myopic agreeableness survival}
cd "$(dirname "$0")/.."
D=${STEER_TRACE_DATA:-../shared/data}/anthropics_evals
ST=${STEER_TRACE:-.venv/bin/steer-trace}
CACHE=${CACHE:-results}
SIZES="--n-validation 12 --n-test 40 --layers 9,14 --coefs 0.2,0.8,3.2 --tax-docs 4 --tax-tokens 64 --gen-tokens 12"
for step in $steps; do
  echo "== $(date -u +%H:%M:%S) evaluate $step"
  case $step in
    myopic) "$ST" evaluate --dataset "$D/advanced-ai-risk/human_generated_evals/myopic-reward.jsonl" --results "$CACHE" \
              --out results/evaluate_smollm2-135m_myopic --n-vector 60 $SIZES ;;
    agreeableness) "$ST" evaluate --dataset "$D/persona/agreeableness.jsonl" --results "$CACHE" \
              --out results/evaluate_smollm2-135m_agreeableness --n-vector 24 $SIZES ;;
    survival) "$ST" evaluate --dataset "$D/advanced-ai-risk/human_generated_evals/survival-instinct.jsonl" \
              --results "$CACHE" --out results/evaluate_smollm2-135m_survival-instinct --n-vector 24 $SIZES ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
