"""What a student's pair table costs: the same student with and without it, calls interleaved.

``python -m benchmarks.pair_table_cost WITHOUT.pt [--student water-tiny] [--molecules 64]``
times ``fast=True`` energy+forces calls (one thread, float32) of the shipped student and of
``WITHOUT`` (the student before its table, e.g. ``git show
04b1abf:ase_distill/students/water-tiny.pt`` and its ``.json``) on one water box, alternating
the two so that both see the same machine load, and prints the median ms per call of each.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from ase_distill import DistilledCalculator
from benchmarks.systems import water_box


def main(argv: list[str] | None = None) -> int:
    """CLI (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("without", help="checkpoint of the student without its table")
    p.add_argument("--student", default="water-tiny", help="shipped student with the table")
    p.add_argument("--molecules", type=int, default=64, help="waters in the box (3 atoms each)")
    p.add_argument("--calls", type=int, default=10)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    calcs = {
        "with table": DistilledCalculator(args.student, fast=True),
        "without": DistilledCalculator.from_checkpoint(args.without, fast=True),
    }
    atoms, rng = water_box(args.molecules), np.random.default_rng(0)
    times: dict[str, list[float]] = {k: [] for k in calcs}
    for call in range(args.calls + 1):  # the first call of each builds or loads its package
        for name, calc in calcs.items():
            atoms.positions[0] += rng.normal(scale=1e-3, size=3)
            atoms.calc = calc
            start = time.perf_counter()
            atoms.get_forces()
            if call:
                times[name].append(1000 * (time.perf_counter() - start))
    medians = {k: statistics.median(v) for k, v in times.items()}
    ratio = medians["with table"] / medians["without"]
    each = ", ".join(f"{k}: {v:.1f} ms" for k, v in medians.items())
    print(f"{each} per call ({len(atoms)} atoms); ratio {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
