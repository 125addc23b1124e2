#!/bin/sh
# The skills study on smollm2-135m at the default size:
#   sh runs/skills_smollm2.sh [extract] [sweep]
# Vectors: text - code and text - Python from 60 / 60 / 22 documents of <= 512 tokens (WikiText-2, HumanEval-X,
# HumanEval), with both controls (permuted components, the paper's permuted means). Sweep: the paper's layers
# (0, 5, ..., 30 of 32 -> 0, 5, 9, 14, 19, 23, 28) and coefficient list with its skip/stop rule; >= 5,000 scored
# tokens per domain at every point, >= 20,000 at the headline points (layers 0 and 14 at c = 1-2, both controls).
# Writes: skills_extract (extract); skills_points (one points run: every point, per document) and skills_sweep
# (the sweep's summary). `steer-trace skills report` then writes results/skills_report/.
# Resumable: every point is cached; with the committed results/ a rerun computes nothing.
# Measured: the points were scored over several sessions on one thread each (load 2-3); the last invocation
# computed 194 points (138 cached) in 6,098 s; a headline step (five points at c = 1, layer 14, ~300k tokens)
# took ~23 min.
set -e
steps=${*:-extract sweep}
cd "$(dirname "$0")/.."
D=${STEER_TRACE_DATA:-../shared/data}
ST=${STEER_TRACE:-.venv/bin/steer-trace}  # the command (default: the Makefile's venv)
R=${RESULTS:-results}                    # the results folder (default: the committed one)
run() { echo "== $(date -u +%H:%M:%S) skills $*"; "$ST" skills "$@" --data-dir "$D" --results "$R"; }
for step in $steps; do
  case $step in
    extract) run extract ;;
    sweep) run sweep ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
echo "== $(date -u +%H:%M:%S) done ($steps)"
