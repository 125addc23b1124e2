#!/bin/sh
# The skills study's headline points on qwen2.5-coder-1.5b (28 layers; the paper's 15 of 32 is 13), in bfloat16
# (this CPU has AMX; `python -m benchmarks.skills_dtype`), at the default token counts (>= 20,000 scored tokens per
# domain at the headline points), one target at a time:
#   make models-large && sh runs/skills_qwen15.sh [extract] [headline-code] [headline-python] [controls]
# headline-<target>: that vector at layers 0 and 13, c = 1, 1.5, 2 (the paper's step rule); controls: the
# permuted-vector and norm-matched controls at layer 13 (the sweep's own control points at those layers).
# Writes: skills_extract (extract); skills_points and skills_sweep (one each per invocation). Resumable: every
# point is cached.
set -e
steps=${*:-extract headline-code headline-python controls}
cd "$(dirname "$0")/.."
D=${STEER_TRACE_DATA:-../shared/data}
ST=${STEER_TRACE:-.venv/bin/steer-trace}  # the command (default: the Makefile's venv)
R=${RESULTS:-results}                    # the results folder (default: the committed one)
run() {
  echo "== $(date -u +%H:%M:%S) skills $*"
  "$ST" skills "$@" --model qwen2.5-coder-1.5b --dtype bfloat16 --data-dir "$D" --results "$R"
}
H="--layers 0,13 --coefs 1,1.5,2"
for step in $steps; do
  case $step in
    extract) run extract ;;
    headline-code) run sweep $H --targets code --no-control ;;
    headline-python) run sweep $H --targets python --no-control ;;
    controls) run sweep $H ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
echo "== $(date -u +%H:%M:%S) done ($steps)"
