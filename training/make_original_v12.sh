#!/usr/bin/env bash
# Issue 11, ask 6 (original's held-out force RMSE <= 0.8x tiny's, 0.0719 eV/A; shipped v11:
# 0.0729): the last 5 minutes of this session's lent H200 and then this machine's two cores.
#   gpu (on the device): the shipped original (the v11 GPU pick) continued alone on the GPU
#     with its v11 recipe (relative force term weight 10, floor 0.5 eV/A, energy weight 200,
#     batches of 128, lr 1e-4 cosine) for MINUTES (2.2);
#   cpu (here, after the call): the 8-minute energy stage (weight 1000, lr 5e-5, batches of 32,
#     best epoch by validation energy) from its last EMA model on two threads, then the
#     held-out report.
# Fixed before any number of this round was seen (the release rule): runs/v12-original-e ships
# if held out its force RMSE is below the shipped original's (0.0729 eV/A), its R2 no lower
# (0.9939) and its energy MAE at most 0.10 meV/atom above the shipped 2.56, and only if its
# NVE/NVT validation on the report molecules stays within the goals.
# Outcome (README, "original, the size goal met"; reports/chno-v3/heldout_v12.*): shipped; held
# out RMSE 0.0729 -> 0.0718 eV/A (0.799x tiny's), R2 0.9941, angle 4.19 deg, energy 2.57
# meV/atom. Alone on the GPU the stage ran 29 steps/s of 128 (13 epochs of 300 in 136 s).
# Steps: `training/make_original_v12.sh prepare` here (training/gpu_round.sh), the device call
# `training/make_original_v12.sh gpu` (its tar keeps last.pt, so that a stage the deadline cuts
# still gives its last EMA model), here `cat /work/.device/N/runs-v12.tar.part* | tar -xf -`,
# then `training/make_original_v12.sh cpu`.
set -u
cd "$(dirname "$0")/.."
ROUND=v12 OUT=${OUT:-/tmp/gpu-out} DEVICE=${DEVICE:-cuda} PY=${PY:-python3}
MINUTES=${MINUTES:-2.2}
source training/train_stage.sh
source training/gpu_round.sh
run=runs/v12-original
recipe=(--set train.relative_force_weight=10 --set train.relative_force_floor=0.5)

if [ "${1:-}" = prepare ]; then
  gpu_prepare runs/v9-tiny-a-e/best.pt runs/v11-original-a-e/best.pt
  exit 0
fi
if [ "${1:-}" = gpu ]; then
  gpu_setup || exit 1
  chno_v3_stage "$run" original 0.0001 "$MINUTES" 8 --device "$DEVICE" "${recipe[@]}" \
    --set train.energy_weight=200 --set train.batch_size=128 \
    --set train.init_from=.gpu/init/original.pt ${DRY_SETS:-} &
  KEEP_LAST=1 gpu_collect "${DEADLINE_S:-215}"
  exit 0
fi
if [ "${1:-}" = cpu ]; then
  PY=.venv/bin/python
  export OMP_NUM_THREADS=2
  [ -f "$run/last_ema.pt" ] || $PY -c "from training.train import save_last_ema; save_last_ema('$run')"
  chno_v3_stage "$run-e" original 0.00005 "${ENERGY_MINUTES:-8}" 2 "${recipe[@]}" \
    --set train.init_from="$run/last_ema.pt" --set train.energy_weight=1000 \
    --set train.select_metric=energy_mae_mev_per_atom
  $PY -m training.heldout data/chno-v3/dataset.xyz reports/chno-v3/heldout_v12.json \
    runs/v11-original-a-e/best.pt "$run/last_ema.pt" "$run-e/best.pt"
  exit 0
fi
echo "usage: $0 prepare|gpu|cpu" >&2
exit 2
