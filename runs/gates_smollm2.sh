#!/bin/sh
# The gates study on smollm2-135m: a projection gate (CAST) "is this code?", then gated vs ungated steering:
#   sh runs/gates_smollm2.sh [fit] [experiment] [report]
# fit: the gate on the shipped labelled prompts (data/conditions/code_vs_prose.jsonl; stratified seeded split,
#   half to fit, half held out), every layer a candidate, mean pooling. Writes results/gates_fit/smollm2-135m-code.
#   safetensors (condition vector, layer, threshold; the fit's numbers as provenance). About a minute; not cached:
#   a rerun writes the same gate (checked: equal tensor and metadata; the file's header may be ordered otherwise).
# experiment: the skills vector text - code at layer 14, c = 1 and 1.5, on held-out text and code documents,
#   ungated and gated by that file. Writes results/gates_summary/ (cached: a rerun computes nothing new).
# report: docs/gates.md from the tables (`steer-trace docs` renders the same page).
# Resumable: each step can be run on its own; `experiment` and `report` need `fit`'s file.
set -e
steps=${*:-fit experiment report}
cd "$(dirname "$0")/.."
ST=${STEER_TRACE:-.venv/bin/steer-trace}  # the command (default: the Makefile's venv)
R=${RESULTS:-results}                    # the results folder (default: the committed one)
G="$R/gates_fit/smollm2-135m-code.safetensors"
for step in $steps; do
  echo "== $(date -u +%H:%M:%S) gates $step"
  case $step in
    fit) mkdir -p "$R/gates_fit"; "$ST" gates fit --model smollm2-135m --out "$G" ;;
    experiment) "$ST" gates experiment --model smollm2-135m --gate "$G" --results "$R" ;;
    report) "$ST" gates report --results "$R" ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
echo "== $(date -u +%H:%M:%S) done ($steps)"
