#!/usr/bin/env bash
# Self-contained GPU check (no network, no Hydra needed; under 5 minutes on one H100/H200):
# backbone training throughput on synthetic tensors and on a generated CUB folder with real JPEG
# loading, CAM/infoCAM evaluation, and the box evaluator at 1,000 thresholds; prints images/s.
# Then the box-evaluator speed-up against a per-image OpenCV loop (scripts/bench_box_eval.py).
# Every step runs even after a failure (to print what it can); the script exits non-zero if any
# step failed, naming them at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
failed=()
PY=${PYTHON:-python3}
# Hydra/OmegaConf are not on the GPU image: scripts/gpu_wheels.sh fetches them into .whl/ here.
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
# which kernels the CPU box sweep uses here (C where a C compiler is found, else numba), built now
"$PY" -m infocam_exp.evaluate --warm-up || failed+=("box sweep warm-up (python -m infocam_exp.evaluate --warm-up)")
# The gpu-marked tests (tests/test_gpu.py: trainer=gpu bf16 + channels_last one-batch fit and test;
# box evaluator on CUDA == CPU). They need the project's dependencies (pytest, Hydra, Lightning:
# pip install -e '.[dev]'); where those are missing the step says so and the check goes on.
if "$PY" -c "import pytest, hydra, pytorch_lightning, torchmetrics" 2>/dev/null; then
  timeout 300 "$PY" -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py || failed+=("gpu tests (tests/test_gpu.py)")
else
  echo "gpu tests not run: pytest/hydra/lightning missing (bash scripts/gpu_wheels.sh here, carry .whl)"
fi
timeout 240 "$PY" scripts/gpu_check.py --steps "${STEPS:-200}" --batch "${BATCH:-64}" || failed+=("scripts/gpu_check.py")
if [ -f scripts/bench_box_eval.py ]; then
  timeout 300 "$PY" scripts/bench_box_eval.py --device cuda --maps 100 --torch-maps 100 --opencv-maps 2 --kinds smooth || failed+=("scripts/bench_box_eval.py")
fi
if ((${#failed[@]})); then
  printf 'GPU check FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "GPU check passed"
