#!/usr/bin/env bash
# The GPU checks, as one script for a lent GPU machine: the opt-in GPU tests (curriculum with
# trainer=gpu and trainer=fsdp, full and LoRA; grouped scoring), then the 8B-shape memory and speed
# benchmark. Figures are printed and written under ${OUT:-gpu_check_out}/.
#
# Python packages: a machine with network access installs the project from the lock into .venv.
# Without network (the lent machines), unpack the missing packages into a folder and name it in
# RANKVIDEO_SITE: torch, lightning, peft are usually there already; av, transformers, hydra-core,
# omegaconf, antlr4-python3-runtime, ir-measures, pytrec-eval-terrier and bm25s are not. MLflow is
# optional here (tracking is switched off when it is missing; its behaviour is tested on the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check_out}
mkdir -p "$OUT"
if [ -n "${RANKVIDEO_SITE:-}" ]; then
  export PYTHONPATH="$RANKVIDEO_SITE:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
  PY=python3
else
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e '.[test]'
  fi
  PY=.venv/bin/python
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
$PY -m pytest -m gpu -s -q -p no:cacheprovider tests/gpu 2>&1 | tee "$OUT/gpu_tests.log"
$PY scripts/bench_backbone.py --out "$OUT/bench_8b.json" 2>&1 | tail -n 40
