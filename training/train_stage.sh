# Sourced by the training recipes (make_*.sh): one resumable training stage.
# train_stage OUT [ase-distill train arguments...]
#   finished (OUT/summary.json): nothing to do; an epoch done (OUT/last.pt): --resume;
#   killed before its first epoch (only OUT/config.json): --overwrite (nothing to lose).
train_stage() {
  local out=$1 extra=()
  shift
  [ -f "$out/summary.json" ] && return 0
  if [ -f "$out/last.pt" ]; then extra+=(--resume)
  elif [ -f "$out/config.json" ]; then extra+=(--overwrite)
  fi
  ${PY:-.venv/bin/python} -m training.cli train --output "$out" --quiet "$@" "${extra[@]}"
}

# students_at COMMIT DIR SIZE...: the shipped students of COMMIT as DIR/SIZE.{pt,json} (kept)
students_at() {
  local commit=$1 dir=$2 size ext
  shift 2
  mkdir -p "$dir"
  for size in "$@"; do
    for ext in pt json; do
      [ -f "$dir/$size.$ext" ] || git show "$commit:ase_distill/students/$size.$ext" > "$dir/$size.$ext"
    done
  done
}

# chno_v3_stage OUT SIZE LR MINUTES THREADS [--set ...]: batches of 32 of data/chno-v3 (or
# $CHNO_DATASET), 300 steps an epoch, 600 validation frames, a cosine schedule over MINUTES;
# its log is OUT.log
chno_v3_stage() {
  local out=$1 size=$2 lr=$3 minutes=$4 threads=$5
  shift 5
  train_stage "$out" --config training/configs/chno_v2.yaml --size "$size" \
    --dataset "${CHNO_DATASET:-data/chno-v3/dataset.xyz}" --epochs 1000 --threads "$threads" \
    --set train.max_steps_per_epoch=300 --set train.batch_size=32 \
    --set train.max_validation_frames=600 --set train.lr="$lr" \
    --set train.time_budget_minutes="$minutes" "$@" >> "$out.log" 2>&1
}

# chno_v3_then_energy OUT SIZE LR MINUTES ENERGY_MINUTES THREADS INIT ENERGY_WEIGHT [--set ...]:
# a chno_v3_stage from INIT, then the energy stage OUT-e from its last EMA model (weight 1000,
# lr 5e-5, best epoch by validation energy); the --set arguments go to both stages. The energy
# stage starts from the last EMA model because best.pt, picked by validation force RMSE, is
# ruled by a few frames far above max_force (make_students_v3.sh).
chno_v3_then_energy() {
  local out=$1 size=$2 lr=$3 minutes=$4 energy_minutes=$5 threads=$6 init=$7 weight=$8
  shift 8
  chno_v3_stage "$out" "$size" "$lr" "$minutes" "$threads" "$@" \
    --set train.init_from="$init" --set train.energy_weight="$weight"
  [ -f "$out/last_ema.pt" ] || \
    ${PY:-.venv/bin/python} -c "from training.train import save_last_ema; save_last_ema('$out')"
  chno_v3_stage "$out-e" "$size" 0.00005 "$energy_minutes" "$threads" "$@" \
    --set train.init_from="$out/last_ema.pt" --set train.energy_weight=1000 \
    --set train.select_metric=energy_mae_mev_per_atom
}

# chno_v4_data: data/chno-v4 (chno-v3 + the fourth generation) as CHNO_DATASET. chno-v4-x is
# unpacked from datasets/ or, without it, labelled again; data/chno-v3 must exist
# (training/make_students_v3.sh, or unpack datasets/chno-v2 and chno-v3-x first).
chno_v4_data() {
  if [ ! -f data/chno-v4-x/summary.json ]; then
    if [ -f datasets/chno-v4-x/dataset.xyz.xz ]; then
      mkdir -p data/chno-v4-x
      xz -dc datasets/chno-v4-x/dataset.xyz.xz > data/chno-v4-x/dataset.xyz
      cp datasets/chno-v4-x/summary.json data/chno-v4-x/
    else
      OMP_NUM_THREADS=1 ${PY:-.venv/bin/python} -m training.cli generate \
        --config training/configs/chno_v4_extension.yaml --workers 2
    fi
  fi
  [ -f data/chno-v4/summary.json ] || ${PY:-.venv/bin/python} -m training.combine data/chno-v4 \
    data/chno-v3 data/chno-v4-x
  export CHNO_DATASET=data/chno-v4/dataset.xyz
}

# continue_shipped ROUND SIZE COMMIT MINUTES ENERGY_MINUTES ENERGY_WEIGHT FLOOR: one round of
# the round scripts make_original_v15.sh to v21: the SIZE student shipped at COMMIT
# (kept as runs/genN/SIZE.pt for the comparison) continued on data/chno-v4 for MINUTES on two
# threads (relative force term weight 10 with FLOOR eV/A, lr 1e-4 cosine, batches of 32), then
# the energy stage from its last EMA model picked on the 120 unseen x4 molecules; then the
# held-out and unseen reports reports/chno-v3/{heldout,unseen}_ROUND.* of the three models.
continue_shipped() {
  local round=$1 size=$2 commit=$3 minutes=$4 energy_minutes=$5 weight=$6 floor=$7
  local gen=runs/gen${round#v} run=runs/$round-$size
  students_at "$commit" "$gen" tiny original ultra-tiny
  chno_v4_data
  chno_v3_then_energy "$run" "$size" 0.0001 "$minutes" "$energy_minutes" 2 "$gen/$size.pt" \
    "$weight" --set train.relative_force_weight=10 --set train.relative_force_floor="$floor" \
    --set train.validation_molecules=120 --set train.validation_molecule_pattern='x4*'
  round_reports "$round" "$gen/$size.pt" "$run/last_ema.pt" "$run-e/best.pt"
}

# round_reports ROUND CHECKPOINT...: a round's reports on data/chno-v4, held out (the ten
# held-out molecules) and unseen (the 120 x4 validation molecules no student was trained on):
# reports/chno-v3/{heldout,unseen}_ROUND.{json,md,png}
round_reports() {
  local round=$1 report unseen=(--unseen 120 'x4*')
  shift
  for report in "" unseen; do
    ${PY:-.venv/bin/python} -m training.heldout ${report:+"${unseen[@]}"} \
      data/chno-v4/dataset.xyz "reports/chno-v3/${report:-heldout}_$round.json" "$@"
  done
}

# continue_tiny ROUND START MINUTES ENERGY_MINUTES: one round of the tiny rounds make_tiny_v16.sh
# and later: START continued on data/chno-v4 for MINUTES on two threads (relative force term
# weight 10 with floor 0.25 eV/A, energy weight 1000, lr 1e-4 cosine, batches of 32, validation
# on the 120 unseen x4 molecules), then the energy stage; then round_reports of the baseline of
# the v16 and v25 rounds (the tiny shipped from 2b9b58e until v25, runs/gen14/tiny.pt), START,
# the last EMA model and the energy stage. A round after v25 compares with its own baseline.
continue_tiny() {
  local round=$1 start=$2 minutes=$3 energy_minutes=$4 run=runs/$1-tiny
  students_at 56d5fdc runs/gen14 tiny original
  chno_v4_data
  chno_v3_then_energy "$run" tiny 0.0001 "$minutes" "$energy_minutes" 2 "$start" 1000 \
    --set train.relative_force_weight=10 --set train.relative_force_floor=0.25 \
    --set train.validation_molecules=120 --set train.validation_molecule_pattern='x4*'
  round_reports "$round" runs/gen14/tiny.pt "$start" "$run/last_ema.pt" "$run-e/best.pt"
}
