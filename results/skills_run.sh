#!/bin/sh
# The skills run on smollm2-135m at the default size, headline points first (points are shared between
# these invocations through the cache: each later one reuses what the earlier ones scored). Resumable:
# rerun this script and finished points are read back.  Usage: nohup nice -n 15 sh results/skills_run.sh &
set -e
cd "$(dirname "$0")/.."
run() { PYTHONPATH=$PWD .venv/bin/python -m tasks.cli skills "$@" --data-dir ../shared/data --results results; }
run extract
run sweep --layers 14 --coefs 1.5 --no-control                 # baselines + the headline point of both vectors
run sweep --layers 0,14 --coefs 1,1.5,2                        # c = 1, 1.5, 2: middle layer, layer 0, both controls
run sweep --layers 0,14 --coefs 1,1.1,1.2,1.3,1.4,1.5,1.6,1.7,1.8,1.9,2   # the whole headline range
run sweep                                                      # the full default sweep (every layer, the paper's list)
