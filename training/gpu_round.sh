# Sourced by the GPU rounds (make_students_v9_gpu.sh, make_students_v11_gpu.sh,
# make_original_v12.sh): one device call of under ten minutes that trains one or several stages
# side by side on one lent GPU.
# Throughput on an H200 (original, 300-step epochs): four stages sharing the GPU ran 17 steps/s
# each with batches of 64 (v9; tiny no faster), 12 with 128 and 7.6 with 256 (v11); one stage
# alone 29 steps/s of 128 (v12). Four side by side thus give 1.7x the samples of one alone, and
# larger batches more samples per second. The device has python3 with CUDA torch but no ase
# or vesin: they travel as wheels in .gpu/whl, the dataset as .gpu/chno-v3.xyz.xz (+ summary),
# the start checkpoints as .gpu/init/SIZE.{pt,json}. The tree must stay under 64 MiB: run
# `KEEP='^$' benchmarks/device_stash.sh stash` before the call and `restore` after it, with
# nothing running here that writes reports/ meanwhile (a running `validate` would lose its
# trajectories).
# Variables: ROUND (runs/ROUND-NAME), OUT, DEVICE (cuda; cpu for a dry run), MINUTES and
# ENERGY_MINUTES (each stage's time budget), PY, DRY_SETS (extra --set for a dry run).

# gpu_prepare TINY_CKPT ORIGINAL_CKPT: here, before the call, fill .gpu (checkpoint + its card)
gpu_prepare() {
  mkdir -p .gpu/whl .gpu/init
  grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo /.gpu/ >> .git/info/exclude
  [ -f .gpu/chno-v3.xyz.xz ] || xz -T2 -6 -c data/chno-v3/dataset.xyz > .gpu/chno-v3.xyz.xz
  cp data/chno-v3/summary.json .gpu/chno-v3-summary.json
  local ext
  for ext in pt json; do  # a checkpoint is NAME.pt plus its card NAME.json
    cp "${1%.pt}.$ext" ".gpu/init/tiny.$ext"
    cp "${2%.pt}.$ext" ".gpu/init/original.$ext"
  done
  .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux2014_x86_64 -d .gpu/whl ase==3.29.0 vesin==0.6.2
}

# gpu_pick SIZE BASELINE_DIR RUN...: here, after the call, `training.pick` of the RUNs against
# the student shipped before the round (BASELINE_DIR/SIZE.json), kept in
# reports/chno-v3/SIZE_ROUND_pick.txt
gpu_pick() {
  local size=$1 base=$2
  shift 2
  $PY -m training.pick "$base/$size.json" "$@" | tee "reports/chno-v3/${size}_${ROUND}_pick.txt"
}

# gpu_setup: on the device, install the wheels and unpack the dataset; sets t0 (seconds)
gpu_setup() {
  mkdir -p "$OUT" runs data/chno-v3
  if [ "$DEVICE" != cpu ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .gpu/whl/*.whl && export PYTHONPATH=/tmp/site
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  fi
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${THREADS:-3}
  t0=$SECONDS
  [ -f data/chno-v3/dataset.xyz ] || xz -dc .gpu/chno-v3.xyz.xz > data/chno-v3/dataset.xyz
  cp .gpu/chno-v3-summary.json data/chno-v3/summary.json
  $PY -c "import torch, ase, vesin; print('torch', torch.__version__, 'ase', ase.__version__)" \
    || return 1
  echo "data ready at $((SECONDS - t0)) s"
}

# gpu_stages NAME SIZE ENERGY_FROM [--set ...]: a force stage from .gpu/init/SIZE.pt (lr 1e-4,
# batches of 64 unless a --set says otherwise), then an energy stage (weight 1000, lr 5e-5, best
# epoch by validation energy) from the force stage's ENERGY_FROM (best.pt or last_ema.pt)
gpu_stages() {
  local run=runs/$ROUND-$1 size=$2 from=$3 threads=${THREADS:-3}
  shift 3
  local common=(--device "$DEVICE" --set train.batch_size=64 "$@" ${DRY_SETS:-})
  chno_v3_stage "$run" "$size" 0.0001 "$MINUTES" "$threads" "${common[@]}" \
    --set train.init_from=".gpu/init/$size.pt"
  echo "$run done at $((SECONDS - t0)) s"
  [ "$from" = last_ema.pt ] && [ ! -f "$run/last_ema.pt" ] && \
    $PY -c "from training.train import save_last_ema; save_last_ema('$run')"
  chno_v3_stage "$run-e" "$size" 0.00005 "$ENERGY_MINUTES" "$threads" "${common[@]}" \
    --set train.init_from="$run/$from" --set train.energy_weight=1000 \
    --set train.select_metric=energy_mae_mev_per_atom
  echo "$run-e done at $((SECONDS - t0)) s"
}

# gpu_collect DEADLINE_S: wait for the stages until DEADLINE_S after gpu_setup, then put
# runs/ROUND-* (without last.pt unless KEEP_LAST is set) in $OUT as tar parts of 15 MiB (a returned file may have 16);
# here `cat /work/.device/N/runs-ROUND.tar.part* | tar -xf -`. A stage the deadline cuts resumes
# from its last.pt in a second call to the still-warm machine.
gpu_collect() {
  while [ -n "$(jobs -r)" ] && [ $((SECONDS - t0)) -lt "$1" ]; do sleep 5; done
  echo "stopped waiting at $((SECONDS - t0)) s; still running: $(jobs -r | wc -l)"
  local exclude=(--exclude=last.pt)
  [ -n "${KEEP_LAST:-}" ] && exclude=()
  tar -cf - "${exclude[@]}" runs/"$ROUND"-* | split -b 15M -d - "$OUT/runs-$ROUND.tar.part"
  tail -n 2 runs/"$ROUND"-*.log
  pkill -f "training.cli train" 2>/dev/null  # stages still running when the call must end
  return 0
}
