#!/bin/sh
# Issue 12, second queue (one core): after qwen's layer-0/11 step, the paper's table points at every paper
# layer on both models (the rows of its skills table), then smollm2's headline range and full sweep, then qwen's.
# Resumable through the cache.  Usage: OMP_NUM_THREADS=1 nohup sh results/skills_queue2.sh [PID] >> results/skills_queue.log 2>&1 &
cd "$(dirname "$0")/.."
if [ -n "$1" ]; then while kill -0 "$1" 2>/dev/null; do sleep 30; done; fi
run() { echo "== $(date -u +%H:%M:%S) skills $*"; PYTHONPATH=$PWD .venv/bin/python -m tasks.cli skills "$@" --data-dir ../shared/data --results results; }
Q="--model qwen2.5-coder-0.5b --sweep-tokens 5000 --headline-tokens 5000"
run sweep $Q --layers 0,11 --coefs 1,1.5,2 >> results/skills_run_qwen.log 2>&1
# the paper's table rows (layer, c): 5 1.0 | 10 1.5, 2.0 | 20, 25, 30 1.5 -> smollm2 5 | 9 | 19, 23, 28
run sweep --layers 5 --coefs 1 --no-control >> results/skills_run.log 2>&1
run sweep --layers 9 --coefs 1.5,2 --no-control >> results/skills_run.log 2>&1
run sweep --layers 19,23,28 --coefs 1.5 --no-control >> results/skills_run.log 2>&1
# ... and qwen (24 layers): 4 | 8 | 15, 19, 23
run sweep $Q --layers 4 --coefs 1 --no-control >> results/skills_run_qwen.log 2>&1
run sweep $Q --layers 8 --coefs 1.5,2 --no-control >> results/skills_run_qwen.log 2>&1
run sweep $Q --layers 15,19,23 --coefs 1.5 --no-control >> results/skills_run_qwen.log 2>&1
run sweep --layers 14 --coefs 1.4,1.8 >> results/skills_run.log 2>&1
run sweep --layers 0,14 --coefs 1,1.1,1.2,1.3,1.4,1.5,1.6,1.7,1.8,1.9,2 >> results/skills_run.log 2>&1
run sweep >> results/skills_run.log 2>&1
run sweep $Q >> results/skills_run_qwen.log 2>&1
echo "== $(date -u +%H:%M:%S) queue2 done"
