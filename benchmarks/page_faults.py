"""Minor page faults and time per MD-like step of ``DistilledCalculator("tiny")`` on caffeine.

python -m benchmarks.page_faults [--out benchmarks/results/page_faults.json]

Each setting runs in a fresh process (the C library's heap state decides the faults): the
shipped compile options, and the same without inductor's ``memory_planning`` (compiled once
into a temporary cache). One thread; the times move with the machine, the faults do not.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = 600


def measure(memory_planning: bool) -> dict:
    """Faults and median ms per step in this process (positions change every step)."""
    import numpy as np
    import torch

    from ase_distill import DistilledCalculator
    from ase_distill import compiled as compiled_mod
    from training.structures import load_structure

    torch.set_num_threads(1)
    compiled_mod.INDUCTOR_OPTIONS = {
        **compiled_mod.INDUCTOR_OPTIONS,
        "memory_planning": memory_planning,
    }
    atoms = load_structure("caffeine")[1]
    atoms.calc = DistilledCalculator("tiny", compile=True)
    rng = np.random.default_rng(0)
    frames = [atoms.positions + rng.normal(0, 0.01, atoms.positions.shape) for _ in range(64)]
    times = []
    for k in range(100 + STEPS):
        if k == 100:
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        atoms.positions = frames[k % 64]
        atoms.get_forces()
        times.append(time.perf_counter() - start)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return {
        "memory_planning": memory_planning,
        "minor_faults_per_step": faults / STEPS,
        "median_ms_per_step": float(np.median(times[100:]) * 1e3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/page_faults.json")
    parser.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child == "on")))
        return
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for setting in ("on", "off"):
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            if setting == "off":  # a package the shipped options would never build
                env["ASE_DISTILL_CACHE"] = cache
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.page_faults", "--child", setting],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1])
    Path(args.out).write_text(json.dumps({"structure": "caffeine", "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
