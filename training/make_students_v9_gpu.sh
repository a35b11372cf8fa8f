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
# On the device: python3 with torch; ase and vesin travel as wheels in .gpu/whl, the dataset as
# .gpu/chno-v3.xyz.xz (+ summary) and the start checkpoints in .gpu/init: run
# `training/make_students_v9_gpu.sh prepare` here first, and `benchmarks/device_stash.sh stash`
# with KEEP='^$' (the tree must stay under 64 MiB; restore after the call).
# Results by DEADLINE_S: $OUT/runs-v9.tar.partNN, parts of 15 MiB (a returned file may have 16);
# here `cat /work/.device/N/runs-v9.tar.part* | tar -xf -` gives runs/v9-*, then
# `training/make_students_v9_gpu.sh report`. last.pt stays on the device: a rerun in the same warm
# machine resumes unfinished stages. (This round's call wrote one tar, too big to come back; the
# parts came from a second call in the still-warm machine.)
# A dry run on this machine: DEVICE=cpu MINUTES=0.1 ENERGY_MINUTES=0.1 DRY_SETS="--set
# train.max_steps_per_epoch=3 --set train.max_validation_frames=20" PY=.venv/bin/python.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}
DEVICE=${DEVICE:-cuda}
MINUTES=${MINUTES:-5.0}
ENERGY_MINUTES=${ENERGY_MINUTES:-1.2}
PY=${PY:-python3}

if [ "${1:-}" = prepare ]; then  # here: the files the device call carries in .gpu
  mkdir -p .gpu/whl .gpu/init
  grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo /.gpu/ >> .git/info/exclude
  [ -f .gpu/chno-v3.xyz.xz ] || xz -T2 -6 -c data/chno-v3/dataset.xyz > .gpu/chno-v3.xyz.xz
  cp data/chno-v3/summary.json .gpu/chno-v3-summary.json
  for ext in pt json; do  # a checkpoint is NAME.pt plus its card NAME.json
    cp "runs/v8-tiny-lowfloor-e/best.$ext" ".gpu/init/tiny.$ext"
    cp "runs/v8-original-e/best.$ext" ".gpu/init/original.$ext"
  done
  .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux2014_x86_64 -d .gpu/whl ase==3.29.0 vesin==0.6.2
  exit 0
fi

if [ "${1:-}" = report ]; then  # here, after the call: the picks and the held-out report
  PY=.venv/bin/python
  source training/train_stage.sh
  students_at 94d09ed runs/gen7 tiny original  # the students shipped before this round
  $PY -m training.pick runs/gen7/tiny.json runs/v9-tiny-{a,a-e,b,b-e} \
    | tee reports/chno-v3/tiny_v9_pick.txt
  $PY -m training.pick runs/gen7/original.json runs/v9-original-{a,b}-e \
    | tee reports/chno-v3/original_v9_pick.txt
  $PY -m training.heldout data/chno-v3/dataset.xyz reports/chno-v3/heldout_v9.json \
    runs/gen7/tiny.pt runs/v9-tiny-{a,a-e,b,b-e}/best.pt \
    runs/gen7/original.pt runs/v9-original-{a,a-e,b-e}/best.pt
  exit 0
fi

mkdir -p "$OUT" runs data/chno-v3
if [ "$DEVICE" != cpu ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .gpu/whl/*.whl && export PYTHONPATH=/tmp/site
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=3
t0=$SECONDS
[ -f data/chno-v3/dataset.xyz ] || xz -dc .gpu/chno-v3.xyz.xz > data/chno-v3/dataset.xyz
cp .gpu/chno-v3-summary.json data/chno-v3/summary.json
$PY -c "import torch, ase, vesin; print('torch', torch.__version__, 'ase', ase.__version__)" || exit 1
echo "data ready at $((SECONDS - t0)) s"

source training/train_stage.sh
gpu_stages() {  # NAME SIZE ENERGY_FROM [--set ...]: a force stage, then an energy stage
  local run=runs/v9-$1 size=$2 from=$3
  shift 3
  local common=(--device "$DEVICE" --set train.batch_size=64 "$@" ${DRY_SETS:-})
  chno_v3_stage "$run" "$size" 0.0001 "$MINUTES" 3 "${common[@]}" \
    --set train.init_from=".gpu/init/$size.pt"
  echo "$run done at $((SECONDS - t0)) s"
  [ "$from" = last_ema.pt ] && [ ! -f "$run/last_ema.pt" ] && \
    $PY -c "from training.train import save_last_ema; save_last_ema('$run')"
  chno_v3_stage "$run-e" "$size" 0.00005 "$ENERGY_MINUTES" 3 "${common[@]}" \
    --set train.init_from="$run/$from" --set train.energy_weight=1000 \
    --set train.select_metric=energy_mae_mev_per_atom
  echo "$run-e done at $((SECONDS - t0)) s"
}
low=(--set train.relative_force_weight=10 --set train.relative_force_floor=0.25)
gpu_stages tiny-a tiny best.pt "${low[@]}" --set train.energy_weight=500 \
  --set train.select_metric=force_angle_deg &
gpu_stages tiny-b tiny best.pt "${low[@]}" --set train.energy_weight=1000 \
  --set train.select_metric=force_angle_deg &
gpu_stages original-a original last_ema.pt --set train.relative_force_weight=10 \
  --set train.relative_force_floor=0.5 --set train.energy_weight=200 &
gpu_stages original-b original last_ema.pt "${low[@]}" --set train.energy_weight=500 &
# the call ends at ten minutes: whatever exists at DEADLINE_S comes back (last.pt resumes it)
while [ -n "$(jobs -r)" ] && [ $((SECONDS - t0)) -lt "${DEADLINE_S:-540}" ]; do sleep 5; done
echo "stopped waiting at $((SECONDS - t0)) s; still running: $(jobs -r | wc -l)"
tar -cf - --exclude=last.pt runs/v9-* | split -b 15M -d - "$OUT/runs-v9.tar.part"
tail -n 2 runs/v9-*.log
pkill -f "training.cli train" 2>/dev/null  # stages still running when the call must end
exit 0
