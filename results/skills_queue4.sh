#!/bin/sh
# Issue 12, fourth queue (one core): queue3's remaining steps, each retried once (a killed step resumes from the
# cache): smollm2's full sweep (the paper's list and rule at every layer), qwen's layer-11 coefficients below 1,
# then qwen's full sweep. Resumable (every point cached).
# Usage: OMP_NUM_THREADS=1 nohup sh results/skills_queue4.sh [PID to wait for] >> results/skills_queue.log 2>&1 &
cd "$(dirname "$0")/.."
if [ -n "$1" ]; then while kill -0 "$1" 2>/dev/null; do sleep 30; done; fi
run() { echo "== $(date -u +%H:%M:%S) skills $*"; PYTHONPATH=$PWD .venv/bin/python -m tasks.cli skills "$@" --data-dir ../shared/data --results results; }
retry() { "$@" || { echo "== $(date -u +%H:%M:%S) retry: $*"; "$@"; }; }
Q="--model qwen2.5-coder-0.5b --sweep-tokens 5000 --headline-tokens 5000"
retry run sweep >> results/skills_run.log 2>&1
retry run sweep $Q --layers 11 --coefs 0.5,0.6,0.7,0.8,0.9 >> results/skills_run_qwen.log 2>&1
retry run sweep $Q >> results/skills_run_qwen.log 2>&1
echo "== $(date -u +%H:%M:%S) queue4 done"
