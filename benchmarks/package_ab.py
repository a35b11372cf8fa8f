"""Interleaved timing of compiled packages: A/B comparisons on a noisy machine.

python -m benchmarks.package_ab {32,64} PACKAGE.pt2 [PACKAGE.pt2 ...] [--molecule caffeine]

Calls each package on the same molecule graph in alternating blocks of 20 calls (one thread),
so that the machine's load changes hit every package alike, and prints per-package median,
10th percentile and fastest block in ms per call, plus the largest force difference to the
first package. Packages live in ``ase_distill.compiled.cache_dir()``; keep an older one by
copying it elsewhere before rebuilding.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ase_distill import atoms_to_graph
from ase_distill.compiled import _direct_call
from training.structures import load_structure

BLOCK = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("precision", choices=["32", "64"])
    parser.add_argument("packages", nargs="+")
    parser.add_argument("--molecule", default="caffeine")
    parser.add_argument("--rounds", type=int, default=150)
    args = parser.parse_args()
    torch.set_num_threads(1)
    dtype = torch.float32 if args.precision == "32" else torch.float64
    graph = atoms_to_graph(load_structure(args.molecule)[1], 5.0, (1, 6, 7, 8), dtype=dtype)
    inputs = (graph.positions, graph.numbers, graph.cell[0], graph.edge_index, graph.edge_shift)
    packages = [_direct_call(torch._inductor.aoti_load_package(p)) for p in args.packages]
    reference = packages[0](*inputs)[2]
    times: list[list[float]] = [[] for _ in packages]
    for _ in range(args.rounds):
        for package, record in zip(packages, times):
            start = time.perf_counter()
            for _ in range(BLOCK):
                package(*inputs)
            record.append((time.perf_counter() - start) / BLOCK * 1e3)
    for path, package, record in zip(args.packages, packages, times):
        diff = (package(*inputs)[2] - reference).abs().max().item()
        print(
            f"{path}: median {statistics.median(record):.3f} p10 "
            f"{statistics.quantiles(record, n=10)[0]:.3f} fastest {min(record):.3f} ms per call, "
            f"max |dF| vs first {diff:.1e}"
        )


if __name__ == "__main__":
    main()
