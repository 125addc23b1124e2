#!/bin/sh
# The rest of issue 11's real runs (queued after behaviours_run2.sh): an Anthropic file with two to
# eight options through every command, and qwen2.5-coder-0.5b single + simultaneous at CPU sizes.
# Resumable like the others.  Usage: OMP_NUM_THREADS=1 nohup sh results/behaviours_more.sh MODE >> LOG 2>&1 &
set -e
mode=${1:?letter or content}
cd "$(dirname "$0")/.."
S=../shared/data/anthropics_evals/advanced-ai-risk/human_generated_evals/survival-instinct.jsonl
D=${STEER_TRACE_PAPER_SETS:-../shared/data/extending-activation-addition/data/datasets}
cli() { echo "== $(date -u +%H:%M:%S) behaviours $*"; PYTHONPATH=$PWD .venv/bin/python -m tasks.cli behaviours "$@"; }
M="--profile paper --scoring $mode --vector-source $mode --results results"
# survival-instinct: 953 questions, 2-8 options (706 with two), seeded split, 500 vector questions
SV="$M --dataset $S --n-vector 500 --n-validation 30 --n-test 100"
cli extract $SV
cli diagnose $SV
cli single $SV --relative --layers 9,14 --add-mult 1 --subtract-mult 1
cli combined $SV --relative --layers 14 --add-mult 1 --subtract-mult 1
cli simultaneous $SV --relative --layers 12 --coefs=-1.2,-0.6,-0.3,-0.1,0,0.1,0.3,0.6,1.2 --tax-docs 8
cli interference $SV --relative --layers 14 --multipliers=-1,1
# qwen2.5-coder-0.5b (24 layers: the paper's 10 / 15 are 8 / 11), 200 vector pairs, 60 test questions
Q="$M --model qwen2.5-coder-0.5b --split paper --data-dir $D --n-vector 200 --n-validation 30 --n-test 60"
cli extract $Q
cli single $Q --relative --layers 8,11 --add-mult 1 --subtract-mult 1
cli simultaneous $Q --relative --coefs=-1.2,-0.8,-0.6,-0.4,-0.3,-0.2,-0.15,-0.1,-0.05,-0.02,0,0.02,0.05,0.1,0.15,0.2,0.3,0.4,0.6,0.8,1.2 --tax-docs 8
echo "== $(date -u +%H:%M:%S) done"
