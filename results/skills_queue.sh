#!/bin/sh
# The skills runs of issue 12 on one core, in order: smollm2's headline points, qwen's first points at 5k
# tokens per domain, then the rest of smollm2's sweep (results/skills_run.sh) and of qwen's.
# Usage: OMP_NUM_THREADS=1 nohup nice -n 5 sh results/skills_queue.sh [PID to wait for] >> results/skills_queue.log 2>&1 &
cd "$(dirname "$0")/.."
if [ -n "$1" ]; then while kill -0 "$1" 2>/dev/null; do sleep 30; done; fi
run() { PYTHONPATH=$PWD .venv/bin/python -m tasks.cli skills "$@" --data-dir ../shared/data --results results; }
run sweep --layers 0,14 --coefs 1,1.5,2 >> results/skills_run.log 2>&1
sh results/skills_qwen.sh >> results/skills_run_qwen.log 2>&1
sh results/skills_run.sh >> results/skills_run.log 2>&1
echo "== $(date -u +%H:%M:%S) queue done"
