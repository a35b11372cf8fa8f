#!/usr/bin/env bash
# One prepared run on a lent GPU: device-resident MD of tiny at 1k / 10k / 100k atoms
# (benchmarks/device_md_bench.py) and a time-boxed training of `original` on the CHNO-v2 data.
# Writes at most 8 files to $OUT (the device tool's limit). Needs .whl/ (ase, vesin for cp312).
set -u
OUT=${OUT:-benchmarks/results/gpu}
TRAIN_MINUTES=${TRAIN_MINUTES:-4.0}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export PYTHONWARNINGS=ignore::DeprecationWarning
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__)"
mkdir -p data/chno-v2
cp datasets/chno-v2/summary.json data/chno-v2/  # the card reads teacher and provenance from it
xz -dc datasets/chno-v2/dataset.xyz.xz > data/chno-v2/dataset.xyz &
t0=$SECONDS
timeout "${MD_SECONDS:-200}" python3 -m benchmarks.device_md_bench "$OUT/device_md.json" \
  --molecules 333 3333 33333 --steps 30
echo "md: $((SECONDS - t0)) s"
wait
RUN=/tmp/original-gpu
timeout 420 python3 -m training.cli train --config training/configs/chno_v2.yaml --output $RUN \
  --size original --epochs 100 --device cuda --set train.init_from=ase_distill/students/original.pt \
  --set train.lr=0.0003 --set train.batch_size=32 --set train.max_steps_per_epoch=300 \
  --set train.max_validation_frames=600 --set train.time_budget_minutes="$TRAIN_MINUTES" --quiet \
  2>&1 | tee "$OUT/train.log" | tail -12
echo "training: $((SECONDS - t0)) s"
for f in best.pt best.json last.pt metrics.json summary.json config.json; do
  [ -f "$RUN/$f" ] && cp "$RUN/$f" "$OUT/"
done
ls "$OUT"
