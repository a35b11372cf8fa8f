#!/usr/bin/env bash
# One prepared call on a lent GPU (device tool), three jobs sharing it:
#  1. SevenNet-0 NVT of the 32-water box at 300 K: the stored run in reports/water/teacher_runs
#     continued by as much as TEACHER_BUDGET_S allows (at most 10 ps more): the equilibrated
#     reference of the water RDF. Back here: `rm -r reports/water/teacher_runs && tar -C /tmp
#     -xJf teacher_runs_gpu.tar.xz && mv /tmp/teacher_runs_gpu reports/water/teacher_runs`.
#  2. `original` and 3. `tiny` trained on CHNO-v2 from the shipped students for TRAIN_MINUTES,
#     then an energy-weighted stage of ENERGY_MINUTES (as training/make_students_v2.sh does on CPU).
# Results come back as 4 archives in $OUT: `tar -C runs/gpu2 -xf original-gpu.tar` (and tiny-gpu.tar)
# gives the runs that training/make_students_v2.sh's held-out report lists;
# teacher_runs_gpu.tar.xz holds the teacher run for reports/water/teacher_runs/. Needs .whl/ carried: ase, vesin, sevenn (pretrained
# SevenNet-0 only), braceexpand, matscipy for cp312.
set -u
OUT=${OUT:-/tmp/gpu-out}
TRAIN_MINUTES=${TRAIN_MINUTES:-5.0}
ENERGY_MINUTES=${ENERGY_MINUTES:-1.0}
TEACHER_BUDGET_S=${TEACHER_BUDGET_S:-380}
DEADLINE_S=${DEADLINE_S:-540}  # the energy stages are cut to end by then (the call's limit is 600)
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu TEACHER_PS=0.005 TRAIN_MINUTES=0.05: a dry run on a CPU
PY=${PY:-python3}
mkdir -p "$OUT"
if [ "$DEVICE" = cuda ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export PYTHONWARNINGS=ignore OMP_NUM_THREADS=4
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch, e3nn, sevenn; print('torch', torch.__version__, 'e3nn', e3nn.__version__)"
t0=$SECONDS

teacher() {
  local ps=${TEACHER_PS:-}
  [ -n "$ps" ] || ps=$($PY -m benchmarks.teacher_ps_for_budget sevennet-0 \
    reports/water/box32_start.xyz --device "$DEVICE" --budget-s "$TEACHER_BUDGET_S" --max-ps 10) \
    || return 1
  rm -rf /tmp/teacher_runs_gpu && cp -r reports/water/teacher_runs /tmp/teacher_runs_gpu
  local stored  # ps already stored: the run continues from its last frame
  stored=$($PY -c "import glob, json; runs = [json.load(open(f)) for f in glob.glob(
    '/tmp/teacher_runs_gpu/*.json')]; print(max([r['time_ps'][-1] for r in runs] + [0.0]))")
  ps=$($PY -c "print(round($stored + $ps, 3))")
  echo "teacher NVT: $stored ps stored, continued to $ps ps (started at $((SECONDS - t0)) s)"
  $PY -m training.cli validate --teacher sevennet-0 --teacher-device "$DEVICE" \
    --structure reports/water/box32_start.xyz --temperature 300 --nvt-ps 20 --nve-ps 10 \
    --teacher-nve-ps 0 --teacher-nvt-ps "$ps" --relabel-every 40 \
    --teacher-runs /tmp/teacher_runs_gpu --teacher-only --quiet
  tar -C /tmp -cJf "$OUT/teacher_runs_gpu.tar.xz" teacher_runs_gpu
  echo "teacher done at $((SECONDS - t0)) s"
}

train_size() {  # size lr: a force stage from the shipped student, then an energy stage
  local size=$1 lr=$2 run=/tmp/$1-gpu
  local common=(--config training/configs/chno_v2.yaml --size "$size" --epochs 1000 --device "$DEVICE"
    --set train.batch_size=64 --set train.max_steps_per_epoch=300
    --set train.max_validation_frames=600 --quiet)
  $PY -m training.cli train "${common[@]}" --output "$run" \
    --set train.init_from="ase_distill/students/$size.pt" --set train.lr="$lr" \
    --set train.time_budget_minutes="$TRAIN_MINUTES"
  local left=$((DEADLINE_S - (SECONDS - t0)))
  echo "$size force stage done at $((SECONDS - t0)) s; $left s left"
  [ "$left" -gt 120 ] && timeout "$left" $PY -m training.cli train "${common[@]}" --output "$run-e" \
    --set train.init_from="$run/best.pt" --set train.lr=0.0001 --set train.energy_weight=500 \
    --set train.select_metric=energy_mae_mev_per_atom \
    --set train.time_budget_minutes="$ENERGY_MINUTES"
  echo "$size energy stage done at $((SECONDS - t0)) s"
  tar -C /tmp -cf "$OUT/$size-gpu.tar" --exclude=last.pt "$size-gpu" "$size-gpu-e"
}

teacher > "$OUT/teacher.log" 2>&1 &
mkdir -p data/chno-v2
cp datasets/chno-v2/summary.json data/chno-v2/  # the card reads teacher and provenance from it
xz -dc datasets/chno-v2/dataset.xyz.xz > data/chno-v2/dataset.xyz
echo "data ready at $((SECONDS - t0)) s"
train_size original 0.0003 > "$OUT/train_original.log" 2>&1 &
train_size tiny 0.0002 > "$OUT/train_tiny.log" 2>&1 &
wait
echo "all done at $((SECONDS - t0)) s"
tail -n 3 "$OUT"/*.log
ls -la "$OUT"
