#!/bin/sh
# Issue 12, seventh queue: qwen's headline points at the default size (>= 20k scored tokens per domain at
# layers 0 and 11 and both controls, c in 1-2) in bfloat16. The sweep-size points are copied from the 5k run
# (6ae43c9de1f74dc3: same model, vectors, numerics and 5k documents); only the 88 headline points and the
# 20k baseline are scored. Two lanes, one core each, one per target; each waits for the queue that holds its
# core (queue5 lane qwen-bf16, queue6) to finish. Then lane code writes the full summary (all cached).
# Usage: OMP_NUM_THREADS=1 nohup sh results/skills_queue7.sh code|python >> results/skills_queue.log 2>&1 &
cd "$(dirname "$0")/.."
run() { echo "== $(date -u +%H:%M:%S) skills $*"; PYTHONPATH=$PWD .venv/bin/python -m tasks.cli skills "$@" --data-dir ../shared/data --results results; }
retry() { "$@" || { echo "== $(date -u +%H:%M:%S) retry: $*"; "$@"; }; }
Q="--model qwen2.5-coder-0.5b --dtype bfloat16"
case "$1" in
  code) WAIT=skills_queue6.sh ;;
  python) WAIT=skills_queue5.sh ;;
  *) echo "usage: $0 code|python"; exit 2 ;;
esac
while pgrep -f "$WAIT" > /dev/null; do sleep 30; done
echo "== $(date -u +%H:%M:%S) queue7 lane $1 start"
retry run sweep $Q --layers 11,0 --targets "$1" >> results/skills_run_qwen.log 2>&1
if [ "$1" = code ]; then
  while pgrep -f "skills_queue7.sh python" > /dev/null; do sleep 30; done
  retry run sweep $Q >> results/skills_run_qwen.log 2>&1
fi
echo "== $(date -u +%H:%M:%S) queue7 lane $1 done"
