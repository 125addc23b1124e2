#!/bin/sh
# The paper's own protocol on smollm2-135m, beside the balanced runs: the plain mean over its 500 vector pairs
# (not letter-balanced), each of its 300 test questions once in its given order (not label-balanced), letter
# scoring, single x+-1 relative at the paper's layers 10 / 15 (9 / 14 here):
#   sh runs/behaviours_plain_mean.sh
# Writes: behaviours_vectors, _cosines, _components (extract); _single (single).
# Resumable: every point is cached. Measured on one core at load ~3: extract 14 min, single 49 min.
set -e
cd "$(dirname "$0")/.."
D=${STEER_TRACE_PAPER_SETS:-../shared/data/extending-activation-addition/data/datasets}
ST=${STEER_TRACE:-.venv/bin/steer-trace}  # the command (default: the Makefile's venv)
R=${RESULTS:-results}                    # the results folder (default: the committed one)
P="--profile paper --split paper --data-dir $D --results $R --plain-mean --orders given --slices plain --n-vector 500 --n-validation 30 --n-test 300"
echo "== $(date -u +%H:%M:%S) behaviours extract"
"$ST" behaviours extract $P
echo "== $(date -u +%H:%M:%S) behaviours single"
"$ST" behaviours single $P --relative --layers 9,14 --add-coef 1 --subtract-coef 1
echo "== $(date -u +%H:%M:%S) done"
