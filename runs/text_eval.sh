#!/bin/sh
# Open-ended evaluation of the reliable behaviour vectors (myopia, wealth-seeking): what the steered model
# writes, beside unsteered, equal-norm random directions and the prompted baseline (steer_trace.text_eval).
# Resumable: a finished report is skipped ("already done"); delete its files to recompute.
# Usage: sh runs/text_eval.sh [MODEL] [BEHAVIOUR...]   (from the repo root; needs ../shared/data)
#   Q=10 sh runs/text_eval.sh smollm2-135m myopic wealth_seeking   (the committed 10-question reports)
# Writes: results/text_eval/<model>-<behaviour>-L<layer>-c<coefs>rel-<key>.{md,json,samples,paired,summary}
# Then: steer-trace text report --out results/text_eval/SUMMARY.md
set -eu
MODEL=${1:-smollm2-135m}
shift || true
BEHAVIOURS=${*:-myopic wealth_seeking}
DATA=${DATA:-../shared/data/extending-activation-addition/data/datasets}
OUT=${OUT:-results/text_eval}
Q=${Q:-8}; K=${K:-2}; T=${T:-24}   # the committed tables; Q >= 10 gives intervals (stats.MIN_PER_LABEL)
case $MODEL in
  smollm2-135m) LAYER=14 ;;
  qwen2.5-coder-0.5b) LAYER=11 ;;
  *) echo "no layer chosen for $MODEL" >&2; exit 2 ;;
esac
export OMP_NUM_THREADS=1
PYTHON=${PYTHON:-python}
for B in $BEHAVIOURS; do
  V=$(ls results/vectors/$MODEL/$B-content-*.safetensors | head -1)
  for COEFS in ${COEFS:-"0.5,1"}; do   # COEFS="0.5,1 -0.5,-1" adds steering away (not run yet)
    nice -n 10 "$PYTHON" -m tasks.cli text eval --model "$MODEL" --dataset "$DATA/$B.json" --vector "$V" \
      --layer $LAYER --coefs=$COEFS --relative --n-questions $Q --samples $K --max-new-tokens $T \
      --n-random 2 --batch-size 48 --out "$OUT"
  done
done
