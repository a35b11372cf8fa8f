"""How many ps of teacher MD fit a time budget: times a few force calls, prints the length.

Used by the GPU recipe (``benchmarks/gpu_session.sh``) before it starts a teacher run that a
timeout would otherwise cut off and lose. Prints one number (ps, rounded down to 0.5 ps).

    python -m benchmarks.teacher_ps_for_budget sevennet-0 reports/water/box32_start.xyz \
        --device cuda --budget-s 400 --max-ps 10
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

#: ASE's Langevin step, trajectory writes and the neighbour list on top of the force call.
STEP_OVERHEAD = 1.15


def seconds_per_call(teacher: str, structure: str, device: str, calls: int = 20) -> float:
    """Median wall time of one energy+forces(+stress) call of the teacher."""
    from training.structures import load_structure
    from training.teachers import is_torch_teacher, make_teacher

    atoms = load_structure(structure)[1]
    options = {"device": device} if is_torch_teacher(teacher) else {}
    atoms.calc = make_teacher(teacher, **options).calculator
    rng = np.random.default_rng(0)
    times = []
    for i in range(calls + 3):  # 3 warm-up calls
        atoms.positions += rng.normal(scale=1e-3, size=atoms.positions.shape)
        t0 = time.perf_counter()
        atoms.get_forces()
        if atoms.pbc.any():
            atoms.get_stress()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("teacher")
    p.add_argument("structure")
    p.add_argument("--device", default="cpu")
    p.add_argument("--budget-s", type=float, required=True)
    p.add_argument("--max-ps", type=float, default=10.0)
    p.add_argument("--timestep-fs", type=float, default=0.5)
    a = p.parse_args(argv)
    per_call = seconds_per_call(a.teacher, a.structure, a.device)
    steps = a.budget_s / (per_call * STEP_OVERHEAD)
    ps = min(a.max_ps, math.floor(steps * a.timestep_fs / 1000 * 2) / 2)
    print(f"{a.teacher} on {a.device}: {per_call * 1e3:.1f} ms per call", file=sys.stderr)
    print(ps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
