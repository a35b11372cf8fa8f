#!/usr/bin/env bash
# One prepared run on a lent GPU (issue: GPU path). Writes everything under $OUT (or
# benchmarks/results/gpu). Needs the wheels in .whl/ for packages the GPU image lacks (ase, vesin)
# and data/gpu-bench/dataset.xyz (`ase-distill generate --config benchmarks/configs/gpu_bench.yaml`).
set -u
OUT=${OUT:-benchmarks/results/gpu}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/device.txt"
t0=$SECONDS
timeout 170 python3 -m pytest tests/test_cuda_kernel.py -v -p no:cacheprovider -o addopts="" \
  2>&1 | tee "$OUT/cuda_tests.log" | tail -45
echo "tests: $((SECONDS - t0)) s"
timeout 190 python3 -m pytest benchmarks/test_scatter_gpu.py -q -p no:cacheprovider -o addopts="" \
  -o testpaths=benchmarks --benchmark-only --benchmark-json="$OUT/scatter_gpu.json" \
  2>&1 | tail -5
echo "benchmarks: $((SECONDS - t0)) s"
for device in ${TRAIN_DEVICES-cuda cpu}; do
  timeout 80 python3 -m benchmarks.train_epoch_time --dataset data/gpu-bench/dataset.xyz \
    --device $device --threads 2 --epochs 3 --out "$OUT/train_$device.json" 2>&1 | tail -2
done
echo "training: $((SECONDS - t0)) s"
python3 -m benchmarks.gpu_report "$OUT" 2>&1 | tail -30
