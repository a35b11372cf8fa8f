#!/usr/bin/env bash
# Issue 11, tiny on this machine's two cores, with fourth-generation data: 850 new molecules
# (datasets/chno-library-v4, names x4*: 300 singly and 350 doubly substituted rings, 200 BRICS
# recombinations; GFN2-xTB labels, training/configs/chno_v4_extension.yaml) added to chno-v3.
# Why: every tiny candidate since v7 met or nearly met the angle goal but landed at 3.11-3.26
# meV/atom held out (goal 3), and the frame-level validation split, which picks the energy
# stage's epoch, ranks them against the held-out order. The held-out energy error is a
# per-molecule offset; 120 of the new molecules, which no student has seen, become the
# validation split (train.validation_molecules=120, pattern x4*), so that the energy stage's
# epoch is picked by the offsets of unseen molecules. The rest add chemistry.
# Start: the best tiny candidate so far, v11's pick (held out 4.995 deg, 3.11 meV/atom; not
# shipped: datasets/candidates/v11-tiny-b-e.pt). Recipe as v11's tiny stages (relative force
# term weight 10, floor 0.25 eV/A, energy weight 1000, lr 1e-4 cosine) for 40 minutes on two
# threads, batches of 32, then the 10-minute energy stage from the last EMA model.
# Fixed before any number of this round was seen (the release rule): runs/v14-tiny-e/best.pt
# ships as tiny if held out it meets all four of tiny's goals (force R2 >= 0.99, angle <= 5 deg,
# energy MAE <= 3 meV/atom, worst molecule R2 >= 0.98) and its NVE/NVT validation on the
# report molecules stays within the goals.
# Every step resumes where it stopped (run this script again).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=2
PY=${PY:-.venv/bin/python}
SHIPPED=${SHIPPED:-56d5fdc}  # the commit whose students this is measured against
UNSEEN=(--unseen 120 'x4*')

source training/train_stage.sh
students_at "$SHIPPED" runs/gen14 tiny original
chno_v4_data
start=datasets/candidates/v11-tiny-b-e.pt
# the signal first: do unseen molecules rank the students as the held-out ones do?
[ -f reports/chno-v3/unseen_students.json ] || $PY -m training.heldout "${UNSEEN[@]}" \
  data/chno-v4/dataset.xyz reports/chno-v3/unseen_students.json runs/gen14/tiny.pt "$start" \
  runs/gen14/original.pt
run=runs/v14-tiny
chno_v3_then_energy "$run" tiny 0.0001 "${TINY_MINUTES:-40}" "${TINY_ENERGY_MINUTES:-10}" 2 \
  "$start" 1000 --set train.relative_force_weight=10 --set train.relative_force_floor=0.25 \
  --set train.validation_molecules=120 --set train.validation_molecule_pattern='x4*'
for report in "" unseen; do
  $PY -m training.heldout ${report:+"${UNSEEN[@]}"} data/chno-v4/dataset.xyz \
    "reports/chno-v3/${report:-heldout}_v14.json" runs/gen14/tiny.pt "$start" \
    "$run/last_ema.pt" "$run-e/best.pt"
done
