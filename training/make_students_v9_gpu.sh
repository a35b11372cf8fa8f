#!/usr/bin/env bash
# Issue 11 on a lent GPU (one device call of under ten minutes): four stages side by side on one
# GPU, each a force stage then an energy stage, batches of 64 of data/chno-v3.
#   tiny-a: the v8 tiny recipe continued from its pick (runs/v8-tiny-lowfloor-e: held out 5.08 deg,
#     3.17 meV/atom): relative force term (weight 10, floor 0.25 eV/A), energy weight 500
#   tiny-b: the same with energy weight 1000 in the force stage too (every tiny candidate since v7
#     has lost the energy goal)
#   original-a: the v8 original recipe continued from runs/v8-original-e (relative term, floor 0.5,
#     energy weight 200), its energy stage from the last EMA model
#   original-b: the same with tiny's floor 0.25 and energy weight 500
# Fixed before any number of this round was seen (the release rules):
#   tiny: python -m training.pick ase_distill/students/tiny.json runs/v9-tiny-{a,a-e,b,b-e}
#     (least validation angle among the runs no worse than the shipped tiny on validation energy)
#     ships if held out it keeps every goal the shipped tiny meets (R2 >= 0.99, energy MAE <= 3
#     meV/atom, worst molecule R2 >= 0.98) and its mean force angle is below the shipped 5.49 deg;
#   original: python -m training.pick ase_distill/students/original.json runs/v9-original-{a,b}-e
#     ships if held out its force RMSE is below the shipped original's, its R2 no lower, and its
#     energy MAE at most 0.10 meV/atom above the shipped 2.47. The tolerance is new: held-out
#     energy MAE is set by per-molecule offsets that move by about 1 meV/atom between candidates
#     (v8's note); it was fixed after v8's numbers were seen, so v8's candidates are not re-judged.
#   either: only if the NVE/NVT validation on the two report molecules stays within the goals.
# Outcome (README, "A GPU round"; reports/chno-v3/heldout_v9.*): original-a-e picked and shipped
# (held out RMSE 0.0820 -> 0.0757 eV/A, R2 0.9923 -> 0.9934, energy 2.47 -> 2.51 meV/atom); the
# tiny pick (tiny-a-e, 5.02 deg, 3.18 meV/atom) loses the energy goal: tiny unchanged.
# How a GPU round runs (prepare here, the call, tar parts back): training/gpu_round.sh. Then
# `training/make_students_v9_gpu.sh report`. (This round's call wrote one tar, too big to come
# back; the parts came from a second call in the still-warm machine.)
# A dry run on this machine: DEVICE=cpu MINUTES=0.1 ENERGY_MINUTES=0.1 DRY_SETS="--set
# train.max_steps_per_epoch=3 --set train.max_validation_frames=20" PY=.venv/bin/python.
set -u
cd "$(dirname "$0")/.."
ROUND=v9 OUT=${OUT:-/tmp/gpu-out} DEVICE=${DEVICE:-cuda} PY=${PY:-python3}
MINUTES=${MINUTES:-5.0} ENERGY_MINUTES=${ENERGY_MINUTES:-1.2}
source training/train_stage.sh
source training/gpu_round.sh

if [ "${1:-}" = prepare ]; then
  gpu_prepare runs/v8-tiny-lowfloor-e/best.pt runs/v8-original-e/best.pt
  exit 0
fi
if [ "${1:-}" = report ]; then  # here, after the call: the picks and the held-out report
  PY=.venv/bin/python
  students_at 94d09ed runs/gen7 tiny original  # the students shipped before this round
  gpu_pick tiny runs/gen7 runs/v9-tiny-{a,a-e,b,b-e}
  gpu_pick original runs/gen7 runs/v9-original-{a,b}-e
  $PY -m training.heldout data/chno-v3/dataset.xyz reports/chno-v3/heldout_v9.json \
    runs/gen7/tiny.pt runs/v9-tiny-{a,a-e,b,b-e}/best.pt \
    runs/gen7/original.pt runs/v9-original-{a,a-e,b-e}/best.pt
  exit 0
fi

gpu_setup || exit 1
low=(--set train.relative_force_weight=10 --set train.relative_force_floor=0.25)
gpu_stages tiny-a tiny best.pt "${low[@]}" --set train.energy_weight=500 \
  --set train.select_metric=force_angle_deg &
gpu_stages tiny-b tiny best.pt "${low[@]}" --set train.energy_weight=1000 \
  --set train.select_metric=force_angle_deg &
gpu_stages original-a original last_ema.pt --set train.relative_force_weight=10 \
  --set train.relative_force_floor=0.5 --set train.energy_weight=200 &
gpu_stages original-b original last_ema.pt "${low[@]}" --set train.energy_weight=500 &
gpu_collect "${DEADLINE_S:-540}"  # the call ends at ten minutes
