#!/usr/bin/env bash
# Fetch, on a machine with PyPI, the pure-Python wheels the GPU machine lacks (its image has torch,
# Lightning, numba, OpenCV, scikit-learn/-image and pytest, but not Hydra/OmegaConf) into .whl/
# (git-ignored). Carry .whl with the device call; scripts/gpu_check.sh installs them when present.
# The GPU machine runs Python 3.12; these wheels are py3-none-any, so any Python fetches them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: -d .whl hydra-core==1.3.2 omegaconf==2.3.0
# antlr4-python3-runtime 4.9.3 (Hydra's parser runtime, pinned by omegaconf) is an sdist only
"$PY" -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3
ls -1 .whl
