#!/bin/sh
# Issue 11: an Anthropic file with two to eight options (survival-instinct: 953 questions, 706 with two)
# through every behaviour command on smollm2-135m, one mode per invocation (letter | content).
# Seeded split, 500 vector questions, 100 label-balanced test questions. Resumable (every point cached).
# Steps (default: all but draws): extract diagnose single combined simultaneous interference; draws: more random
# directions per point, so the spread has 20 draws at both layers (layer 14 has 10 from combined and interference).
# Usage: OMP_NUM_THREADS=1 nohup sh results/behaviours_survival.sh content ["steps"] >> results/behaviours_run_survival.log 2>&1 &
set -e
mode=${1:?letter or content}
cd "$(dirname "$0")/.."
S=../shared/data/anthropics_evals/advanced-ai-risk/human_generated_evals/survival-instinct.jsonl
cli() { echo "== $(date -u +%H:%M:%S) behaviours $*"; PYTHONPATH=$PWD .venv/bin/python -m tasks.cli behaviours "$@"; }
SV="--profile paper --scoring $mode --vector-source $mode --results results --dataset $S --n-vector 500 --n-validation 30 --n-test 100"
steps=${2:-extract diagnose single combined simultaneous interference}
for step in $steps; do
  case $step in
    extract) cli extract $SV ;;
    diagnose) cli diagnose $SV ;;
    single) cli single $SV --relative --layers 9,14 --add-mult 1 --subtract-mult 1 ;;
    combined) cli combined $SV --relative --layers 14 --add-mult 1 --subtract-mult 1 ;;
    simultaneous) cli simultaneous $SV --relative --layers 12 --coefs=-1.2,-0.6,-0.3,-0.1,0,0.1,0.3,0.6,1.2 --tax-docs 8 ;;
    interference) cli interference $SV --relative --layers 14 --multipliers=-1,1 ;;
    draws) cli single $SV --relative --layers 9 --add-mult 1 --subtract-mult 1 --more-random 9
           cli single $SV --relative --layers 14 --add-mult 1 --subtract-mult 1 --more-random 4 ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
echo "== $(date -u +%H:%M:%S) done"
