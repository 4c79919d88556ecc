#!/usr/bin/env bash
# The GPU checks, as one script for a lent GPU machine (no network there): installs the project
# from the lock if needed and runs the opt-in GPU tests, printing peak memory and pairs/s.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e '.[test]'
fi
. .venv/bin/activate
nvidia-smi --query-gpu=name,memory.total --format=csv || true
HF_HUB_OFFLINE=1 python -m pytest -m gpu -s -q tests/gpu
