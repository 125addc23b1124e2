#!/bin/sh
# Issue 12, third queue (one core): after layer 14 at c = 1.4 / 1.8, the middle layer's coefficients below 1 (where
# the equal-damage crossing at 70% lies), then each model's full sweep (the paper's list and rule at every layer;
# it holds the headline range c = 1.0-2.0 at 20k tokens, so that is not a separate step). Resumable (every point cached).
# Usage: OMP_NUM_THREADS=1 nohup sh results/skills_queue3.sh [PID] >> results/skills_queue.log 2>&1 &
cd "$(dirname "$0")/.."
if [ -n "$1" ]; then while kill -0 "$1" 2>/dev/null; do sleep 30; done; fi
run() { echo "== $(date -u +%H:%M:%S) skills $*"; PYTHONPATH=$PWD .venv/bin/python -m tasks.cli skills "$@" --data-dir ../shared/data --results results; }
Q="--model qwen2.5-coder-0.5b --sweep-tokens 5000 --headline-tokens 5000"
run sweep --layers 14 --coefs 0.25,0.5,0.6,0.7,0.8,0.9 >> results/skills_run.log 2>&1
run sweep >> results/skills_run.log 2>&1
run sweep $Q --layers 11 --coefs 0.5,0.6,0.7,0.8,0.9 >> results/skills_run_qwen.log 2>&1
run sweep $Q >> results/skills_run_qwen.log 2>&1
echo "== $(date -u +%H:%M:%S) queue3 done"
