"""Page faults and system time per force call on 96 atoms of water, with and without tuning.

Why the ``ase-distill`` program applies :func:`ase_distill.tuning.reuse_freed_memory`: even on a
small box, glibc maps and unmaps every large temporary tensor on every call. Each calculator
runs in a fresh process (the setting is process-wide), once as the system leaves it and once
tuned. ``python benchmarks/water_page_faults.py [OUT.json]`` (one thread; ~1 min).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BOX = "reports/water/box32_start.xyz"
CALLS = {"water-tiny": 100, "sevennet-0": 8}

CHILD = """
import json, resource, sys, time
import numpy as np
from ase.io import read
if sys.argv[2] == "tuned":
    from ase_distill.tuning import reuse_freed_memory
    reuse_freed_memory()
if sys.argv[1] == "sevennet-0":
    from training.teachers import make_teacher
    calc = make_teacher("sevennet-0").calculator
else:
    from ase_distill import DistilledCalculator
    calc = DistilledCalculator(sys.argv[1], fast=True)
atoms = read(sys.argv[3]); atoms.calc = calc
atoms.get_forces()  # warm-up: loading, compiling, first allocations
n = int(sys.argv[4])
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for i in range(n):
    atoms.positions += 5e-4 * np.sin(i + np.arange(3))
    atoms.get_forces()
r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
print(json.dumps({
    "ms_per_call": (t1 - t0) / n * 1e3,
    "faults_per_call": (r1.ru_minflt - r0.ru_minflt) / n,
    "user_s_per_call": (r1.ru_utime - r0.ru_utime) / n,
    "system_s_per_call": (r1.ru_stime - r0.ru_stime) / n,
}))
"""


def measure(name: str, mode: str) -> dict:
    """One calculator, one allocator mode, in a fresh one-thread process."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, name, mode, BOX, str(CALLS[name])],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    """Measure both calculators both ways; print a line each and write JSON if asked."""
    results = {f"{n} {m}": measure(n, m) for n in CALLS for m in ("system", "tuned")}
    for label, r in results.items():
        faults, system_ms = r["faults_per_call"], r["system_s_per_call"] * 1e3
        print(f"{label:18s} {r['ms_per_call']:8.1f} ms/call {faults:9.0f} faults/call "
              f"system {system_ms:6.1f} ms/call")  # fmt: skip
    if argv:
        Path(argv[0]).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
