#!/usr/bin/env bash
# On-policy rounds for the CHNO ultra-tiny (issue 11, ask 4): a committee of three ultra-tiny
# students, fine-tuned from the second-generation one (runs/v2-ultra-tiny-e), explores 300-1000 K MD of training molecules and of
# the 96 library molecules the dataset never held; the 150 frames per round where the committee
# disagrees most (a quarter random) get GFN2-xTB labels and join the data (every earlier frame
# stays). Held-out fidelity and MD stability per round: runs/onpolicy-ultra-tiny/rounds.{json,png}.
# Resumes at the phase it stopped in: run it again.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
PY=${PY:-.venv/bin/python}
source training/train_stage.sh
# The start: the second-generation ultra-tiny before these rounds (training/make_students_v2.sh);
# the shipped ultra-tiny is now this recipe's own result.
START=runs/v2-ultra-tiny-e/best.pt
[ -f data/chno-v2/new_seeds.xyz ] || \
  $PY -m training.onpolicy datasets/chno-library/library.json 400 data/chno-v2/new_seeds.xyz
[ -n "${CONTROL_ONLY:-}" ] || $PY -m training.cli distil --dataset data/chno-v2/dataset.xyz --teacher gfn2-xtb \
  --output runs/onpolicy-ultra-tiny --size ultra-tiny --committee 3 --rounds "${ROUNDS:-4}" \
  --epochs 1 --md-runs 24 --md-steps 300 --select 150 --threads 1 \
  --init-from "$START" --new-seeds data/chno-v2/new_seeds.xyz \
  --train-set max_steps_per_epoch=300 --train-set lr=0.0003 --train-set min_lr=0.00001 \
  --train-set energy_weight=50 --train-set max_force=30 --train-set max_validation_frames=300

# The shipped candidate: the last round's member 0 plus the energy-weighted stage every
# shipped CHNO student had (400 steps, energy weight 500, best epoch by energy).
if [ -z "${CONTROL_ONLY:-}" ]; then
  train_stage runs/onpolicy-ultra-tiny-e --config training/configs/chno_v2.yaml \
    --size ultra-tiny --epochs 1 --threads 1 \
    --set train.init_from=runs/onpolicy-ultra-tiny/round_03/member_0/best.pt \
    --set train.max_steps_per_epoch=400 --set train.lr=0.0001 --set train.energy_weight=500 \
    --set train.select_metric=energy_mae_mev_per_atom --set train.max_validation_frames=600
fi

# Control (CONTROL=1): the same four 300-step stages from the same student without on-policy
# frames, so that the rounds' gain is not mistaken for the gain of more steps.
[ -n "${CONTROL:-}" ] || exit 0
init=$START
for k in 0 1 2 3; do
  train_stage "runs/onpolicy-control/stage_$k" --config training/configs/chno_v2.yaml \
    --size ultra-tiny --epochs 1 --threads 1 --set train.init_from="$init" \
    --set train.max_steps_per_epoch=300 --set train.lr=0.0003 --set train.min_lr=0.00001 \
    --set train.energy_weight=50 --set train.max_force=30 --set train.max_validation_frames=300 \
    --set train.seed="$k"
  init=runs/onpolicy-control/stage_$k/best.pt
done
$PY -m training.onpolicy report runs/onpolicy-ultra-tiny runs/onpolicy-control reports/chno-v2/onpolicy
