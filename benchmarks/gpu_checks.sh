#!/usr/bin/env bash
# The GPU checks of issue 13 in one run (about 8 minutes on one GPU): the GPU-only tests, then
# the prediction and training benchmarks whose GPU figures benchmarks/README.md still lacks.
# Run from the repository root on a machine with a GPU and the venv built (`make test` once).
# Everything is printed and also written under ${OUT:-gpu-checks}/ to be copied back.
set -uo pipefail
OUT=${OUT:-gpu-checks}
PY=${PY:-.venv/bin/python}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt" || {
    echo "error: nvidia-smi failed: no GPU visible" >&2; exit 1; }
"$PY" -c "import tensorflow as tf; g = tf.config.list_physical_devices('GPU'); print('TensorFlow', tf.__version__, g); assert g" \
    2>/dev/null | tee -a "$OUT/gpu.txt" || { echo "error: TensorFlow sees no GPU" >&2; exit 1; }
export TF_CPP_MIN_LOG_LEVEL=3
step() { echo "== $*" | tee -a "$OUT/steps.txt"; local t0=$SECONDS; "$@"; echo "== rc=$? in $((SECONDS - t0)) s" | tee -a "$OUT/steps.txt"; }
step "$PY" -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | tee "$OUT/pytest-gpu.txt"
step timeout 240 "$PY" benchmarks/bench_predict.py --sizes --heights --device --size 16384 2>&1 | tee "$OUT/predict-device.txt"
step timeout 120 "$PY" benchmarks/bench_predict.py --sizes --heights --device --size 16384 --precision mixed 2>&1 | tee "$OUT/predict-device-mixed.txt"
step timeout 150 "$PY" benchmarks/bench_train.py --precision mixed 2>&1 | tee "$OUT/train-mixed.txt"
step timeout 100 "$PY" benchmarks/bench_train.py --precision mixed --jit-compile on 2>&1 | tee "$OUT/train-mixed-xla.txt"
echo "figures in $OUT/ (record them in benchmarks/README.md with the GPU model from $OUT/gpu.txt)"
