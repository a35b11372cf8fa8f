#!/usr/bin/env bash
# One prepared call on a lent GPU (device tool): SevenNet-0 NVT of the 32-water box at 300 K, as
# many processes side by side as there are chains, each stopped after MD_BUDGET_S of MD and stored:
#  - main: the stored plain run (reports/water/teacher_runs/$MAIN_KEY.*, the RDF reference)
#    continued, as `validate --teacher-only` continues any stored run;
#  - one chain per reports/water/chain_starts/*.xyz (frames of that run written by
#    `python -m training.water_chains`), each with its own velocities and Langevin seed
#    (chain_starts/seeds.json); the chains stored in reports/water/teacher_chains/ continue.
# Every run is an ordinary stored teacher run: later sessions continue it with the same command.
# Results come back as xz archives in $OUT (the device tool returns at most 8 files of 16 MB):
#   main.tar.xz -> its store replaces reports/water/teacher_runs/$MAIN_KEY.*;
#   chains_*.tar.xz -> reports/water/teacher_chains/ (one store folder per chain).
# The tracked tree is over the tool's 64 MiB: `bash benchmarks/device_stash.sh stash` before the
# call and `... restore` right after. Needs .whl/ carried (ase, vesin, sevenn with SevenNet-0's
# weights only, braceexpand, matscipy for cp312). Dry run on a CPU:
#   DEVICE=cpu MD_BUDGET_S=20 CHAINS=2 bash benchmarks/gpu_water_chains.sh
set -u
OUT=${OUT:-/tmp/gpu-out}
MD_BUDGET_S=${MD_BUDGET_S:-400}
DEVICE=${DEVICE:-cuda}
CHAINS=${CHAINS:-99}  # at most this many chain starts (in name order)
MAIN_KEY=${MAIN_KEY:-783191aeda8159fc1ce7}
PY=${PY:-python3}
WORK=${WORK:-/tmp/water-chains}
mkdir -p "$OUT"
if [ "$DEVICE" = cuda ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export PYTHONWARNINGS=ignore OMP_NUM_THREADS=2 XZ_OPT="-6 -T0"
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
t0=$SECONDS
if [ -n "${CONTINUE:-}" ] && [ -d "$WORK/main" ]; then  # a second call on the same machine
  echo "continuing the runs in $WORK"
else
  rm -rf "$WORK" && mkdir -p "$WORK/main" "$WORK/logs" "$WORK/chains"
  cp reports/water/teacher_runs/$MAIN_KEY.* "$WORK/main/"
  cp -r reports/water/teacher_chains/. "$WORK/chains/" 2>/dev/null  # stored chains continue
fi
common=(--teacher sevennet-0 --teacher-device "$DEVICE" --temperature 300 --nve-ps 0
  --teacher-nve-ps 0 --relabel-every 40 --teacher-only --quiet --teacher-budget-s "$MD_BUDGET_S")
# the main run's own settings (its lineage): --nvt-ps 20 --nve-ps 10 as when it was started
$PY -m training.cli validate "${common[@]}" --structure reports/water/box32_start.xyz \
  --nvt-ps 20 --nve-ps 10 --teacher-nvt-ps 30 --teacher-runs "$WORK/main" \
  > "$WORK/logs/main.log" 2>&1 &
k=0
for start in $(ls reports/water/chain_starts/*.xyz | head -n "$CHAINS"); do
  k=$((k + 1))
  name=$(basename "$start" .xyz)
  seed=$($PY -c "import json; print(json.load(open('reports/water/chain_starts/seeds.json'))['$name'])")
  $PY -m training.cli validate "${common[@]}" --structure "$start" --nvt-ps 20 \
    --teacher-nvt-ps 20 --seed "$seed" --teacher-runs "$WORK/chains/$name" \
    > "$WORK/logs/$name.log" 2>&1 &
done
echo "$((k + 1)) teacher runs started at $((SECONDS - t0)) s"
wait
echo "all runs done at $((SECONDS - t0)) s"
tail -n 2 "$WORK"/logs/*.log
rm -f "$WORK"/main/running_* "$WORK"/chains/*/running_*  # partial copies; the store has the run
tar -C "$WORK" -cJf "$OUT/main.tar.xz" main
names=$(ls "$WORK/chains")
half=$(( ($(echo "$names" | wc -l) + 1) / 2 ))
tar -C "$WORK/chains" -cJf "$OUT/chains_a.tar.xz" $(echo "$names" | head -n "$half")
tar -C "$WORK/chains" -cJf "$OUT/chains_b.tar.xz" $(echo "$names" | tail -n +"$((half + 1))")
tar -C "$WORK" -cJf "$OUT/logs.tar.xz" logs
for f in "$OUT"/*.tar.xz; do  # the tool returns files of at most 16 MB: `cat F.part-* > F` here
  if [ "$(stat -c %s "$f")" -gt 15000000 ]; then split -b 15000000 "$f" "$f.part-" && rm "$f"; fi
done
echo "packed at $((SECONDS - t0)) s"
ls -la "$OUT"
