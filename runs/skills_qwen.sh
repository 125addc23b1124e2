#!/bin/sh
# The skills study on qwen2.5-coder-0.5b (24 layers; the paper's 15 is 11), in three parts, run in this order:
#   sh runs/skills_qwen.sh [extract] [float32-check] [bfloat16-sweep] [bfloat16-headline]
# float32-check: float32 points at 5,000 scored tokens per domain (headline points too) at c = 1-2 on every layer,
#   the reference the bfloat16 run is checked against (`skills report`, "Numerics"); its own points run;
# bfloat16-sweep: the full sweep in bfloat16 at 5,000 tokens per domain (this CPU has AMX: several times faster
#   than float32; `python -m benchmarks.skills_dtype`);
# bfloat16-headline: the headline points (layers 0 and 11 and both controls, c = 1-2) at the default >= 20,000
#   tokens per domain (qwen's code: every evaluation document, 18,481), one target at a time; the sweep-size
#   points are copied from the bfloat16 sweep (same documents), only the headline points and the 20k baseline are
#   scored. This points run is the one the docs and `skills report` use.
# Writes: skills_extract (extract); skills_points (one points run per part) and skills_sweep (a summary per
# invocation). Resumable: every point is cached; with the committed results/ a rerun computes nothing.
# Measured on one or two cores (load ~3): bfloat16 steps of two points 51-68 s at layers 8-15, 38-39 s per point
# at layer 0; the 20k headline points (80 scored) 99 + 110 min, one core per target.
set -e
steps=${*:-extract float32-check bfloat16-sweep bfloat16-headline}
cd "$(dirname "$0")/.."
D=${STEER_TRACE_DATA:-../shared/data}
ST=${STEER_TRACE:-.venv/bin/steer-trace}  # the command (default: the Makefile's venv)
R=${RESULTS:-results}                    # the results folder (default: the committed one)
run() {
  echo "== $(date -u +%H:%M:%S) skills $*"
  "$ST" skills "$@" --model qwen2.5-coder-0.5b --data-dir "$D" --results "$R"
}
Z="--sweep-tokens 5000 --headline-tokens 5000"
for step in $steps; do
  case $step in
    extract) run extract ;;
    float32-check) run sweep $Z --layers 11 --coefs 1,1.5,2 --no-control
                   run sweep $Z --layers 0,11 --coefs 1,1.5,2
                   run sweep $Z --layers 4 --coefs 1 --no-control
                   run sweep $Z --layers 8 --coefs 1.5,2 --no-control
                   run sweep $Z --layers 15,19,23 --coefs 1.5 --no-control ;;
    bfloat16-sweep) run sweep $Z --dtype bfloat16 ;;
    bfloat16-headline) run sweep --dtype bfloat16 --layers 0,11 --targets code
                       run sweep --dtype bfloat16 --layers 0,11 --targets python
                       run sweep --dtype bfloat16 ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
echo "== $(date -u +%H:%M:%S) done ($steps)"
