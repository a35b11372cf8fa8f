#!/usr/bin/env bash
# Second-generation CHNO students (issue 11): GFN2-xTB labels on the 496-molecule library, then
# each student fine-tuned from its first-generation weights, plus the energy ablation.
# 2 CPU cores; every step resumes where it stopped (run this script again). Stages:
#   v2-<size>           init from the first-generation student, per-element reference refit
#   v2-<size>-norefit   the same without the refit (ablation, ultra-tiny only)
#   v2-<size>-e         + a short stage with a high energy weight, best epoch by energy MAE
# Then: python -m training.heldout data/chno-v2/dataset.xyz reports/chno-v2/heldout.json ...
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=training/configs/chno_v2.yaml
export OMP_NUM_THREADS=1
PY=${PY:-.venv/bin/python}
GEN1=e6e51c4  # the commit whose students are the first generation
GEN3=d2f7768  # the commit whose ultra-tiny the fifth CPU stage starts from
GEN4=18b1627  # the commit whose students the sixth CPU session starts from
# the labels: generated here, or unpacked from datasets/chno-v2 (datasets/README.md) beforehand
[ -f data/chno-v2/summary.json ] || \
  $PY -m training.cli generate --config "$CONFIG" --workers "${WORKERS:-2}" --quiet

source training/train_stage.sh
students_at "$GEN1" runs/gen1 tiny ultra-tiny original
stage() {  # name size init epochs steps_per_epoch lr [--set ...]
  local out=runs/$1 size=$2 init=$3 epochs=$4 steps=$5 lr=$6
  shift 6
  train_stage "$out" --config "$CONFIG" --size "$size" --epochs "$epochs" \
    --threads "${THREADS:-1}" --set train.init_from="$init" --set train.max_steps_per_epoch="$steps" \
    --set train.lr="$lr" --set train.max_validation_frames=600 "$@"
}
energy_stage() {  # name size epochs steps
  stage "$1-e" "$2" "runs/$1/best.pt" "$3" "$4" 0.0001 --set train.energy_weight=500 \
    --set train.select_metric=energy_mae_mev_per_atom
}

tiny() {  # the shipped tiny is v2-tiny; its energy stage was stopped unfinished (card note)
  stage v2-tiny tiny runs/gen1/tiny.pt "${TINY_EPOCHS:-4}" 1000 0.0005 --set train.refit_reference=true
  [ -n "${TINY_ENERGY_STAGE:-}" ] && energy_stage v2-tiny tiny 1 600
  if [ -n "${TINY_MORE:-}" ]; then  # 3,000 more steps from the shipped tiny, then its energy stage
    stage v2-tiny-more tiny runs/v2-tiny-e/best.pt 3 1000 0.0002
    energy_stage v2-tiny-more tiny 1 600
  fi
  if [ -n "${TINY_CPU3:-}" ]; then  # from the H200-trained tiny: 2 CPU threads, then its energy stage
    stage v3-tiny-cpu tiny runs/gpu2/tiny-gpu-e/best.pt 1000 500 0.00015 --set train.batch_size=32 \
      --set train.time_budget_minutes="${TINY_CPU3_MINUTES:-80}"
    stage v3-tiny-cpu-e tiny runs/v3-tiny-cpu/best.pt 1000 300 0.0001 --set train.batch_size=32 \
      --set train.energy_weight=500 --set train.select_metric=energy_mae_mev_per_atom \
      --set train.time_budget_minutes="${TINY_CPU3_ENERGY_MINUTES:-15}"
  fi
  return 0
}
ultra_tiny_cpu3() {  # from the shipped (on-policy) ultra-tiny: one CPU thread, then its energy stage
  stage v3-ultra-tiny-cpu ultra-tiny runs/onpolicy-ultra-tiny-e/best.pt 1000 500 0.0003 \
    --set train.batch_size=32 --set train.time_budget_minutes="${ULTRA_CPU3_MINUTES:-55}"
  stage v3-ultra-tiny-cpu-e ultra-tiny runs/v3-ultra-tiny-cpu/best.pt 1000 300 0.0001 \
    --set train.batch_size=32 --set train.energy_weight=500 \
    --set train.select_metric=energy_mae_mev_per_atom \
    --set train.time_budget_minutes="${ULTRA_CPU3_ENERGY_MINUTES:-12}"
}
ultra_tiny_cpu4() {  # fifth CPU session: from the shipped ultra-tiny of $GEN3, on chno-v2 plus
  # the 600 on-policy frames (96 library molecules the base set never held), then its energy stage
  local data=data/chno-v2-op/dataset.xyz
  if [ ! -f "$data" ]; then
    mkdir -p data/chno-v2-op
    { cat data/chno-v2/dataset.xyz; xz -dc datasets/chno-v2-onpolicy/labelled_round_0*.xyz.xz; } \
      > "$data.tmp" && mv "$data.tmp" "$data"
  fi
  students_at "$GEN3" runs/gen3 ultra-tiny
  stage v4-ultra-tiny-cpu ultra-tiny runs/gen3/ultra-tiny.pt 1000 500 0.0002 --dataset "$data" \
    --set train.batch_size=32 --set train.time_budget_minutes="${ULTRA_CPU4_MINUTES:-75}"
  stage v4-ultra-tiny-cpu-e ultra-tiny runs/v4-ultra-tiny-cpu/best.pt 1000 300 0.0001 \
    --dataset "$data" --set train.batch_size=32 --set train.energy_weight=500 \
    --set train.select_metric=energy_mae_mev_per_atom \
    --set train.time_budget_minutes="${ULTRA_CPU4_ENERGY_MINUTES:-12}"
  # the energy stage left the energy MAE above the shipped one's: a second, slower one
  stage v4-ultra-tiny-cpu-e2 ultra-tiny runs/v4-ultra-tiny-cpu-e/best.pt 1000 300 0.00005 \
    --dataset "$data" --set train.batch_size=32 --set train.energy_weight=1000 \
    --set train.select_metric=energy_mae_mev_per_atom \
    --set train.time_budget_minutes="${ULTRA_CPU4_ENERGY2_MINUTES:-15}"
  $PY -m training.heldout data/chno-v2/dataset.xyz reports/chno-v2/heldout_v4.json \
    runs/gen3/ultra-tiny.pt runs/v4-ultra-tiny-cpu/best.pt runs/v4-ultra-tiny-cpu-e/best.pt \
    runs/v4-ultra-tiny-cpu-e2/best.pt
}
tiny_cpu4() {  # sixth CPU session: a second, slower energy stage from the shipped tiny of $GEN4
  students_at "$GEN4" runs/gen4 tiny
  stage v5-tiny-e2 tiny runs/gen4/tiny.pt 1000 300 0.00005 --set train.batch_size=32 \
    --set train.energy_weight=1000 --set train.select_metric=energy_mae_mev_per_atom \
    --set train.time_budget_minutes="${TINY_CPU4_MINUTES:-15}"
  $PY -m training.heldout data/chno-v2/dataset.xyz reports/chno-v2/heldout_v5_tiny.json \
    runs/gen4/tiny.pt runs/v5-tiny-e2/best.pt
}
pair_energy() {  # sixth CPU session: the energy ablation of the shipped three (GEN4), and the
  # pair-corrected ultra-tiny that ships (python -m training.ship runs/pair-energy/ultra-tiny-pairs.pt ultra-tiny)
  students_at "$GEN4" runs/gen4 tiny ultra-tiny original
  [ -f reports/chno-v2/pair_energy.json ] || $PY -m training.pair_energy data/chno-v2/dataset.xyz \
    reports/chno-v2/pair_energy.json runs/gen4/tiny.pt runs/gen4/ultra-tiny.pt runs/gen4/original.pt
  [ -f reports/chno-v2/pair_energy_ultra_tiny.json ] || $PY -m training.pair_energy \
    data/chno-v2/dataset.xyz reports/chno-v2/pair_energy_ultra_tiny.json runs/gen4/ultra-tiny.pt \
    --force-weights 0 1e-3 1e-2 3e-2 1e-1 3e-1 1 --save runs/pair-energy
}
small_and_large() {
  stage v2-ultra-tiny-norefit ultra-tiny runs/gen1/ultra-tiny.pt 2 800 0.001
  stage v2-ultra-tiny ultra-tiny runs/gen1/ultra-tiny.pt 2 800 0.001 --set train.refit_reference=true
  energy_stage v2-ultra-tiny ultra-tiny 1 400
  # the shipped original ran 1 epoch (ORIGINAL_EPOCHS=1) in its session
  stage v2-original original runs/gen1/original.pt "${ORIGINAL_EPOCHS:-1}" 700 0.0003 \
    --set train.refit_reference=true
}
# ONLY=tiny or ONLY=small_and_large runs one branch (e.g. to restart it with other epochs)
if [ -z "${ONLY:-}" ] || [ "$ONLY" = tiny ]; then tiny >> runs/v2-tiny.log 2>&1 & fi
# ONLY=ultra_tiny_cpu3 (not part of a full run): ultra-tiny's CPU stages of the fourth session
if [ "${ONLY:-}" = ultra_tiny_cpu3 ]; then ultra_tiny_cpu3 >> runs/v3-ultra-tiny.log 2>&1 & fi
# ONLY=ultra_tiny_cpu4 (not part of a full run): ultra-tiny's CPU stages of the fifth session
if [ "${ONLY:-}" = ultra_tiny_cpu4 ]; then ultra_tiny_cpu4 >> runs/v4-ultra-tiny.log 2>&1 & fi
# ONLY=tiny_cpu4 (not part of a full run): tiny's second energy stage of the sixth CPU session
if [ "${ONLY:-}" = tiny_cpu4 ]; then tiny_cpu4 >> runs/v5-tiny.log 2>&1 & fi
# ONLY=pair_energy (not part of a full run): the sixth session's pair-energy ablation
if [ "${ONLY:-}" = pair_energy ]; then pair_energy >> runs/pair-energy.log 2>&1 & fi
if [ -z "${ONLY:-}" ] || [ "$ONLY" = small_and_large ]; then
  small_and_large >> runs/v2-small-large.log 2>&1 &
fi
wait
[ -n "${ONLY:-}" ] && exit 0
# the report of every stage; runs/onpolicy-ultra-tiny-e comes from training/make_onpolicy.sh
# and runs/v2-original-gpu from benchmarks/gpu_md_train.sh (a GPU), when they are there
extra=()
# GPU stages (benchmarks/gpu_md_train.sh, benchmarks/gpu_session.sh), unpacked into runs/
for run in runs/onpolicy-ultra-tiny-e runs/v2-original-gpu runs/gpu2/original-gpu \
  runs/gpu2/original-gpu-e runs/gpu2/tiny-gpu runs/gpu2/tiny-gpu-e runs/v3-tiny-cpu runs/v3-tiny-cpu-e \
  runs/v3-ultra-tiny-cpu runs/v3-ultra-tiny-cpu-e; do
  [ -f "$run/best.pt" ] && extra+=("$run/best.pt")
done
$PY -m training.heldout data/chno-v2/dataset.xyz reports/chno-v2/heldout.json \
  runs/gen1/tiny.pt runs/gen1/ultra-tiny.pt runs/gen1/original.pt \
  runs/v2-ultra-tiny-norefit/best.pt runs/v2-ultra-tiny/best.pt runs/v2-ultra-tiny-e/best.pt \
  runs/v2-tiny/best.pt runs/v2-tiny-e/best.pt runs/v2-tiny-more-e/best.pt \
  runs/v2-original/best.pt "${extra[@]}"
