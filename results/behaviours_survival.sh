#!/bin/sh
# Issue 11: an Anthropic file with two to eight options (survival-instinct: 953 questions, 706 with two)
# through every behaviour command on smollm2-135m, one mode per invocation (letter | content).
# Seeded split, 500 vector questions, 100 label-balanced test questions. Resumable (every point cached).
# Usage: OMP_NUM_THREADS=1 nohup sh results/behaviours_survival.sh content >> results/behaviours_run_survival.log 2>&1 &
set -e
mode=${1:?letter or content}
cd "$(dirname "$0")/.."
S=../shared/data/anthropics_evals/advanced-ai-risk/human_generated_evals/survival-instinct.jsonl
cli() { echo "== $(date -u +%H:%M:%S) behaviours $*"; PYTHONPATH=$PWD .venv/bin/python -m tasks.cli behaviours "$@"; }
SV="--profile paper --scoring $mode --vector-source $mode --results results --dataset $S --n-vector 500 --n-validation 30 --n-test 100"
cli extract $SV
cli diagnose $SV
cli single $SV --relative --layers 9,14 --add-mult 1 --subtract-mult 1
cli combined $SV --relative --layers 14 --add-mult 1 --subtract-mult 1
cli simultaneous $SV --relative --layers 12 --coefs=-1.2,-0.6,-0.3,-0.1,0,0.1,0.3,0.6,1.2 --tax-docs 8
cli interference $SV --relative --layers 14 --multipliers=-1,1
echo "== $(date -u +%H:%M:%S) done"
