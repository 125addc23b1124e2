#!/bin/sh
# Issue 12, sixth queue (the second core, free once smollm2's sweep finished): qwen's deepest layers in
# bfloat16, from the end, while queue5's qwen-bf16 lane works up from layer 4; both write the same points
# run, so each reaches the other's points cached. Resumable.
# Usage: OMP_NUM_THREADS=1 nohup sh results/skills_queue6.sh >> results/skills_queue.log 2>&1 &
cd "$(dirname "$0")/.."
run() { echo "== $(date -u +%H:%M:%S) skills $*"; PYTHONPATH=$PWD .venv/bin/python -m tasks.cli skills "$@" --data-dir ../shared/data --results results; }
Q="--model qwen2.5-coder-0.5b --sweep-tokens 5000 --headline-tokens 5000 --dtype bfloat16 --no-control"
echo "== $(date -u +%H:%M:%S) queue6 start"
for L in 23 19 15; do run sweep $Q --layers $L >> results/skills_run_qwen.log 2>&1; done
echo "== $(date -u +%H:%M:%S) queue6 done"
