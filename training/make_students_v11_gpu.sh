#!/usr/bin/env bash
# Issue 11 on a lent GPU, second round (one device call of under ten minutes; the v9 round's
# lesson: each stage process is bound by Python dispatch, 17 steps/s for tiny and original alike
# with four sharing the GPU, so larger batches cost little time). Four stages side by side, each
# a 5-minute force stage then a 1-minute energy stage (weight 1000, lr 5e-5):
#   original-a: the shipped original (the v10 CPU pick, b66de53) continued with its recipe
#     (relative force term weight 10, floor 0.5 eV/A, energy weight 200, lr 1e-4 cosine), batches
#     of 128 (v9: 64); its energy stage from the last EMA model
#   original-b: the same with batches of 256
#   tiny-a: the best tiny candidate so far (runs/v9-tiny-a-e: held out 5.02 deg, 3.18 meV/atom,
#     not shipped) continued with the v9 tiny-b recipe (relative term weight 10, floor 0.25 eV/A,
#     energy weight 1000, best epoch by validation angle), batches of 128
#   tiny-b: the same with batches of 256
# Fixed before any number of this round was seen (the release rules):
#   tiny: python -m training.pick ase_distill/students/tiny.json runs/v11-tiny-{a,a-e,b,b-e}
#     (least validation angle among the runs no worse than the shipped tiny on validation energy)
#     ships if held out it keeps every goal the shipped tiny meets (R2 >= 0.99, energy MAE <= 3
#     meV/atom, worst molecule R2 >= 0.98) and its mean force angle is below the shipped 5.49 deg;
#   original: python -m training.pick ase_distill/students/original.json
#     runs/v11-original-{a,b}-e ships if held out its force RMSE is below the shipped original's
#     (0.0742 eV/A), its R2 no lower (0.9937) and its energy MAE at most 0.10 meV/atom above the
#     shipped 2.53;
#   either: only if the NVE/NVT validation on the two report molecules stays within the goals.
# Outcome (README, "A second GPU round"; reports/chno-v3/heldout_v11.*): original-a-e picked and
# shipped (held out RMSE 0.0742 -> 0.0729 eV/A, R2 0.9939, energy 2.56 meV/atom); the tiny pick
# (tiny-b-e, 4.995 deg, 3.11 meV/atom) loses the energy goal: tiny unchanged. Batches of 128
# gave 12 steps/s per stage, 256 gave 7.6: more samples per second than v9's 64, not the same
# step rate the header above expected.
# How a GPU round runs (prepare here, the call, tar parts back): training/gpu_round.sh. Then
# `training/make_students_v11_gpu.sh report` here.
# A dry run on this machine: DEVICE=cpu MINUTES=0.1 ENERGY_MINUTES=0.1 DRY_SETS="--set
# train.max_steps_per_epoch=3 --set train.max_validation_frames=20" PY=.venv/bin/python.
set -u
cd "$(dirname "$0")/.."
ROUND=v11 OUT=${OUT:-/tmp/gpu-out} DEVICE=${DEVICE:-cuda} PY=${PY:-python3}
MINUTES=${MINUTES:-5.0} ENERGY_MINUTES=${ENERGY_MINUTES:-1.0}
source training/train_stage.sh
source training/gpu_round.sh

if [ "${1:-}" = prepare ]; then
  gpu_prepare runs/v9-tiny-a-e/best.pt runs/v10-original-e/best.pt  # v10: shipped at b66de53
  exit 0
fi
if [ "${1:-}" = report ]; then  # here, after the call: the picks and the held-out report
  PY=.venv/bin/python
  students_at b66de53 runs/gen10 tiny original  # the students shipped before this round
  gpu_pick tiny runs/gen10 runs/v11-tiny-{a,a-e,b,b-e}
  gpu_pick original runs/gen10 runs/v11-original-{a,b}-e
  $PY -m training.heldout data/chno-v3/dataset.xyz reports/chno-v3/heldout_v11.json \
    runs/gen10/tiny.pt runs/v11-tiny-{a,a-e,b,b-e}/best.pt \
    runs/gen10/original.pt runs/v11-original-{a,a-e,b,b-e}/best.pt
  exit 0
fi

gpu_setup || exit 1
low=(--set train.relative_force_weight=10 --set train.relative_force_floor=0.25
  --set train.energy_weight=1000 --set train.select_metric=force_angle_deg)
original=(--set train.relative_force_weight=10 --set train.relative_force_floor=0.5
  --set train.energy_weight=200)
gpu_stages tiny-a tiny best.pt "${low[@]}" --set train.batch_size=128 &
gpu_stages tiny-b tiny best.pt "${low[@]}" --set train.batch_size=256 &
gpu_stages original-a original last_ema.pt "${original[@]}" --set train.batch_size=128 &
gpu_stages original-b original last_ema.pt "${original[@]}" --set train.batch_size=256 &
gpu_collect "${DEADLINE_S:-565}"  # the call ends at ten minutes
