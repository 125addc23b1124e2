#!/bin/sh
# Issue 12, fifth queue: queue4's steps in two lanes, one core each (the machine has two and issue 11's runs
# are done): lane smollm2 = smollm2's full sweep; lane qwen = qwen's layer-11 coefficients below 1, then qwen's
# full sweep (fp32; stopped after a minute: superseded by qwen-bf16); lane qwen-bf16 = qwen's full sweep in
# bfloat16 (this CPU has AMX: 3.3-4x faster end to end than fp32; the fp32 points already cached at layers 0,
# 4, 8, 11, 15, 19, 23 are the check of the two). Each step retried once; resumable (every point cached).
# Usage: OMP_NUM_THREADS=1 nohup sh results/skills_queue5.sh smollm2|qwen|qwen-bf16 >> results/skills_queue.log 2>&1 &
cd "$(dirname "$0")/.."
run() { echo "== $(date -u +%H:%M:%S) skills $*"; PYTHONPATH=$PWD .venv/bin/python -m tasks.cli skills "$@" --data-dir ../shared/data --results results; }
retry() { "$@" || { echo "== $(date -u +%H:%M:%S) retry: $*"; "$@"; }; }
Q="--model qwen2.5-coder-0.5b --sweep-tokens 5000 --headline-tokens 5000"
echo "== $(date -u +%H:%M:%S) queue5 lane $1 start"
case "$1" in
  smollm2) retry run sweep >> results/skills_run.log 2>&1 ;;
  qwen) retry run sweep $Q --layers 11 --coefs 0.5,0.6,0.7,0.8,0.9 >> results/skills_run_qwen.log 2>&1
        retry run sweep $Q >> results/skills_run_qwen.log 2>&1 ;;
  qwen-bf16) retry run sweep $Q --dtype bfloat16 >> results/skills_run_qwen.log 2>&1 ;;
  *) echo "usage: $0 smollm2|qwen|qwen-bf16"; exit 2 ;;
esac
echo "== $(date -u +%H:%M:%S) queue5 lane $1 done"
