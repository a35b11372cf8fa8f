#!/usr/bin/env bash
# Run the CPU benchmarks group by group (one JSON each: a group that runs out of memory loses
# only itself; the last group changes the process's allocator), then write speedups.json and
# scaling.png. Used by `make bench`.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1
mkdir -p benchmarks/results
for group in "test_student" "test_floor" "test_teacher and gfn2" "test_teacher and direct" \
             "test_teacher and conservative" "test_teacher and chgnet" "test_tiny_modes" \
             "test_reused_memory_student"; do
  name=$(echo "$group" | tr ' ' '_')
  $PY -m pytest benchmarks/test_speed.py -q -p no:cacheprovider -p no:warnings --benchmark-only \
    -o testpaths=benchmarks -k "$group" --benchmark-json="benchmarks/results/run-$name.json" \
    || echo "benchmark group '$group' failed or ran out of memory (rc=$?)"
done
$PY -m benchmarks.report benchmarks/results/run-*.json
# batched evaluation and the water students vs SevenNet / Orb: their own reports
$PY -m pytest benchmarks/test_batch_speed.py -q -p no:cacheprovider -o testpaths=benchmarks \
  --benchmark-only --benchmark-json=benchmarks/results/batch-run.json && \
  $PY -m benchmarks.batch_report benchmarks/results/batch-run.json
# issue 14: a small molecule vs its teachers, and cost and memory up to 10^5 atoms
$PY -m pytest benchmarks/test_small_and_large.py -q -p no:cacheprovider -o testpaths=benchmarks \
  --benchmark-only --benchmark-json=benchmarks/results/small-large-run.json && \
  $PY -m benchmarks.small_large_report benchmarks/results/small-large-run.json
$PY -m pytest benchmarks/test_water_speed.py -q -p no:cacheprovider -o testpaths=benchmarks \
  --benchmark-only --benchmark-json=benchmarks/results/water-run.json && \
  $PY -m benchmarks.water_report benchmarks/results/water-run.json
