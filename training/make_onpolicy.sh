#!/usr/bin/env bash
# On-policy rounds for the CHNO ultra-tiny (issue 11, ask 4): a committee of three ultra-tiny
# students, fine-tuned from the shipped one, explores 300-1000 K MD of training molecules and of
# the 96 library molecules the dataset never held; the 150 frames per round where the committee
# disagrees most (a quarter random) get GFN2-xTB labels and join the data (every earlier frame
# stays). Held-out fidelity and MD stability per round: runs/onpolicy-ultra-tiny/rounds.{json,png}.
# Resumes at the phase it stopped in: run it again.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
PY=${PY:-.venv/bin/python}
[ -f data/chno-v2/new_seeds.xyz ] || \
  $PY -m training.onpolicy datasets/chno-library/library.json 400 data/chno-v2/new_seeds.xyz
[ -n "${CONTROL_ONLY:-}" ] || $PY -m training.cli distil --dataset data/chno-v2/dataset.xyz --teacher gfn2-xtb \
  --output runs/onpolicy-ultra-tiny --size ultra-tiny --committee 3 --rounds "${ROUNDS:-4}" \
  --epochs 1 --md-runs 24 --md-steps 300 --select 150 --threads 1 \
  --init-from ase_distill/students/ultra-tiny.pt --new-seeds data/chno-v2/new_seeds.xyz \
  --train-set max_steps_per_epoch=300 --train-set lr=0.0003 --train-set min_lr=0.00001 \
  --train-set energy_weight=50 --train-set max_force=30 --train-set max_validation_frames=300

# The shipped candidate: the last round's member 0 plus the energy-weighted stage every
# shipped CHNO student had (400 steps, energy weight 500, best epoch by energy).
out=runs/onpolicy-ultra-tiny-e
if [ -z "${CONTROL_ONLY:-}" ] && [ ! -f "$out/summary.json" ]; then
  resume=(); [ -f "$out/last.pt" ] && resume=(--resume)
  [ -f "$out/config.json" ] && [ ! -f "$out/last.pt" ] && resume=(--overwrite)
  $PY -m training.cli train --config training/configs/chno_v2.yaml --output "$out" \
    --size ultra-tiny --epochs 1 --threads 1 \
    --set train.init_from=runs/onpolicy-ultra-tiny/round_03/member_0/best.pt \
    --set train.max_steps_per_epoch=400 --set train.lr=0.0001 --set train.energy_weight=500 \
    --set train.select_metric=energy_mae_mev_per_atom --set train.max_validation_frames=600 \
    --quiet "${resume[@]}"
fi

# Control (CONTROL=1): the same four 300-step stages from the same student without on-policy
# frames, so that the rounds' gain is not mistaken for the gain of more steps.
[ -n "${CONTROL:-}" ] || exit 0
init=ase_distill/students/ultra-tiny.pt
for k in 0 1 2 3; do
  out=runs/onpolicy-control/stage_$k
  if [ ! -f "$out/summary.json" ]; then
    resume=(); [ -f "$out/last.pt" ] && resume=(--resume)
    [ -f "$out/config.json" ] && [ ! -f "$out/last.pt" ] && resume=(--overwrite)
    $PY -m training.cli train --config training/configs/chno_v2.yaml --output "$out" \
      --size ultra-tiny --epochs 1 --threads 1 --set train.init_from="$init" \
      --set train.max_steps_per_epoch=300 --set train.lr=0.0003 --set train.min_lr=0.00001 \
      --set train.energy_weight=50 --set train.max_force=30 --set train.max_validation_frames=300 \
      --set train.seed="$k" --quiet "${resume[@]}"
  fi
  init=$out/best.pt
done
$PY -m training.onpolicy report runs/onpolicy-ultra-tiny runs/onpolicy-control reports/chno-v2/onpolicy
