#!/bin/sh
# Issue 11, fourth queue (one core): survival-instinct's remaining content steps and its 20-draw spread, then as
# queue3: letter vector quality, qwen content, letter combined, the plain-mean protocol, layer 9's spread, x0.5,
# qwen letter, survival letter. Resumable (every point cached).
# Usage: OMP_NUM_THREADS=1 nohup sh results/behaviours_queue4.sh [PID to wait for] >> results/behaviours_queue.log 2>&1 &
cd "$(dirname "$0")/.."
if [ -n "$1" ]; then while kill -0 "$1" 2>/dev/null; do sleep 30; done; fi
sh results/behaviours_survival.sh content "combined simultaneous interference draws" >> results/behaviours_run_survival.log 2>&1
sh results/behaviours_run2.sh letter diagnose >> results/behaviours_run_letter.log 2>&1
sh results/behaviours_qwen.sh content >> results/behaviours_run_qwen.log 2>&1
sh results/behaviours_run2.sh letter combined >> results/behaviours_run_letter.log 2>&1
sh results/behaviours_plain_mean.sh >> results/behaviours_run_plain_mean.log 2>&1
sh results/behaviours_run2.sh content draws9 half >> results/behaviours_run_content.log 2>&1
sh results/behaviours_run2.sh letter half >> results/behaviours_run_letter.log 2>&1
sh results/behaviours_qwen.sh letter >> results/behaviours_run_qwen.log 2>&1
sh results/behaviours_survival.sh letter >> results/behaviours_run_survival.log 2>&1
echo "== $(date -u +%H:%M:%S) queue4 done"
