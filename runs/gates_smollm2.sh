#!/bin/sh
# The gates study on smollm2-135m:
#   sh runs/gates_smollm2.sh [fit] [experiment] [report]
# fit: a projection gate ("is this code?") fitted on data/conditions/code_vs_prose.jsonl (50 fit / 50 held-out
# prompts, every layer a candidate). experiment: the skills vector text - code at layer 14, c = 1 and 1.5,
# unsteered / steered / gated on 24 held-out text and 24 code documents of <= 128 tokens (WikiText-2, HumanEval-X).
# Writes: results/gates_fit/smollm2-135m-code.safetensors (fit), results/gates_experiment (per document and arm)
# and results/gates_summary/smollm2-135m.csv (experiment); report: docs/gates.md.
# Resumable: every arm is a cached point; with the committed results/ a rerun of experiment computes nothing
# (fit always recomputes: its output is the gate file).
# Measured: fit 297 s; experiment 2,490 s (gate scores 377 s, five arms 156-631 s), one thread each, at load
# average 23-29 on the 2 shared cores.
set -e
steps=${*:-fit experiment report}
cd "$(dirname "$0")/.."
D=${STEER_TRACE_DATA:-../shared/data}
ST=${STEER_TRACE:-.venv/bin/steer-trace}  # the command (default: the Makefile's venv)
R=${RESULTS:-results}                    # the results folder (default: the committed one)
G=$R/gates_fit/smollm2-135m-code.safetensors
for step in $steps; do
  echo "== $(date -u +%H:%M:%S) gates $step"
  case $step in
    fit) mkdir -p "$R/gates_fit"; "$ST" gates fit --model smollm2-135m --out "$G" ;;
    experiment) "$ST" gates experiment --gate "$G" --data-dir "$D" --results "$R" --coefs 1,1.5 --n-docs 24 \
                  --max-tokens 128 --batch-size 8 ;;
    report) "$ST" gates report --results "$R" ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
echo "== $(date -u +%H:%M:%S) done ($steps)"
