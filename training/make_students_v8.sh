#!/usr/bin/env bash
# Issue 11 on this machine's two cores, one thread each, side by side:
#   tiny (open goal: held-out mean force angle <= 5 deg): from the best-angle candidate of
#   make_tiny_v7.sh (runs/v7-tiny-angle-e, held out 5.23 deg but 3.11 meV/atom), the relative
#   force term with its floor lowered from 0.5 to 0.25 eV/A. On the validation split, atoms of
#   0.1-1 eV/A (41 %) carry 3.75 of that candidate's 5.44 deg (python -m training.angle_by_force
#   data/chno-v3/dataset.xyz runs/v7-tiny-angle-e/best.pt --split validation); a floor of 0.25
#   doubles their weight at 0.3 eV/A and leaves forces above 1 eV/A as they were. Energy weight
#   500 (was 200) because every v7 candidate lost the energy goal.
#   original (open: all four goals): from the shipped original, the v7 relative term (weight 10,
#   floor 0.5 eV/A), energy weight 200, then the third generation's energy stage.
# Fixed before any held-out number was seen:
#   tiny: python -m training.pick (least validation angle among the candidates whose validation
#     energy MAE is no worse than the shipped tiny's) ships unless it loses a held-out goal the
#     shipped tiny meets (R2 >= 0.99, energy MAE <= 3 meV/atom, worst molecule R2 >= 0.98);
#   original: runs/v8-original-e ships if its held-out force RMSE is below the shipped original's
#     and its energy MAE no higher.
# Outcome (reports/chno-v3/heldout_v8.*, README): both candidates lost their energy rule (tiny
# 3.17 > 3 meV/atom, original 2.52 > 2.47), so neither shipped.
# Every step resumes where it stopped (run this script again).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
PY=${PY:-.venv/bin/python}
SHIPPED=${SHIPPED:-94d09ed}  # the commit whose tiny and original this starts from

source training/train_stage.sh
students_at "$SHIPPED" runs/gen7 tiny original
# data/chno-v3: training/make_students_v3.sh (or unpack datasets/chno-v2 and chno-v3-x first)
[ -f runs/v7-tiny-angle-e/summary.json ] || training/make_tiny_v7.sh
tiny() {
  local run=runs/v8-tiny-lowfloor low=(--set train.relative_force_weight=10
    --set train.relative_force_floor=0.25)
  chno_v3_stage "$run" tiny 0.0001 "${TINY_MINUTES:-105}" 1 "${low[@]}" \
    --set train.init_from=runs/v7-tiny-angle-e/best.pt --set train.energy_weight=500 \
    --set train.select_metric=force_angle_deg
  chno_v3_stage "$run-e" tiny 0.00005 "${TINY_ENERGY_MINUTES:-12}" 1 "${low[@]}" \
    --set train.init_from="$run/best.pt" --set train.energy_weight=1000 \
    --set train.select_metric=energy_mae_mev_per_atom
}
original() {
  chno_v3_then_energy runs/v8-original original 0.0001 "${ORIGINAL_MINUTES:-105}" \
    "${ORIGINAL_ENERGY_MINUTES:-12}" 1 runs/gen7/original.pt 200 \
    --set train.relative_force_weight=10 --set train.relative_force_floor=0.5
}
tiny &
original &
wait
mkdir -p reports/chno-v3
$PY -m training.pick runs/gen7/tiny.json runs/v8-tiny-lowfloor runs/v8-tiny-lowfloor-e \
  | tee reports/chno-v3/tiny_v8_pick.txt
$PY -m training.heldout data/chno-v3/dataset.xyz reports/chno-v3/heldout_v8.json \
  runs/gen7/tiny.pt runs/v8-tiny-lowfloor/best.pt runs/v8-tiny-lowfloor-e/best.pt \
  runs/gen7/original.pt runs/v8-original-e/best.pt
