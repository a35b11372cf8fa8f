#!/usr/bin/env bash
# MD validation of a CHNO student on the report molecules (issue 11; README, the MD table):
# `ase-distill validate`, NVE 10 ps at 300 K, then NVT 50 ps at 600 K, GFN2-xTB relabelling
# every 50 steps, the student through the compiled float32 path; reports in
# reports/chno-v3/<molecule>_<student>/, teacher runs cached in reports/chno-v3/teacher_runs.
# Usage: training/validate_chno.sh STUDENT [MOLECULE...]  (default: the three report molecules)
#   OVERWRITE=1  replace existing reports (a newly shipped student); without it an existing
#                report is an error, so that a finished report is never replaced silently
#   JOBS=N       molecules validated at once (default 2: one per core, one thread each, since
#                tblite needs OMP_NUM_THREADS=1 beside anything else); logs in runs/
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
student=${1:?usage: training/validate_chno.sh STUDENT [MOLECULE...]}
shift
molecules=("$@")
[ ${#molecules[@]} -gt 0 ] || molecules=(hypoxanthine ace_tyr_nme 2_aminopurine)

validate() {  # molecule
  ${PY:-.venv/bin/python} -m training.cli validate --student "$student" --teacher gfn2-xtb \
    --structure "$1" --nve-ps 10 --nvt-ps 50 --temperature 300 --nvt-temperature 600 \
    --teacher-nve-ps 1 --teacher-nvt-ps 2 --relabel-every 50 --fast \
    --teacher-runs reports/chno-v3/teacher_runs --output reports/chno-v3 --quiet \
    ${OVERWRITE:+--overwrite}
}

mkdir -p runs
pids=()
for molecule in "${molecules[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "${JOBS:-2}" ]; do sleep 5; done
  validate "$molecule" > "runs/validate_${student//\//_}_$molecule.log" 2>&1 &
  pids+=($!)
done
failed=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { failed=1; echo "failed: ${molecules[$i]} (runs/validate_*_${molecules[$i]}.log)"; }
done
[ "$failed" = 0 ] && echo "validated $student on ${molecules[*]}: reports/chno-v3/<molecule>_$student/"
exit "$failed"
