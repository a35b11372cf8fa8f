"""Where a student's time goes: torch profiler tables for one energy+forces call.

python -m benchmarks.profile [--student tiny] [--out benchmarks/results/profile_tiny.txt]

Writes, per system, the calculator-path split (graph building vs network) and the top
operators of the eager network forward+backward (1 thread, float32, as in ``make bench``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from ase.calculators.calculator import all_changes
from torch.profiler import profile

from ase_distill import DistilledCalculator, atoms_to_graph
from benchmarks.systems import SYSTEMS


def _ms(fn, n: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e3


def profile_system(student: str, name: str) -> str:
    """Text report for one student on one benchmark system."""
    atoms = SYSTEMS[name]()
    calc = DistilledCalculator(student, dtype=torch.float32)
    n = 20 if len(atoms) < 200 else 3
    graph = atoms_to_graph(atoms, calc.cutoff, calc.species, dtype=torch.float32)
    args = (*graph.model_inputs(), graph.n_structures, True, False, False)
    whole = _ms(lambda: calc.calculate(atoms, ["energy", "forces"], all_changes), n)
    build = _ms(lambda: atoms_to_graph(atoms, calc.cutoff, calc.species, dtype=torch.float32), n)
    net = _ms(lambda: calc.potential(*args), n)
    with torch.no_grad():
        fwd = _ms(lambda: calc.potential(*args[:-3], False, False, False), n)
    with profile() as prof:
        calc.potential(*args)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
    n_ops = sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))
    return (
        f"## {student} on {name}: {len(atoms)} atoms, {graph.edge_index.shape[1]} edges\n"
        f"calculator call {whole:.2f} ms = graph building {build:.2f} ms + network "
        f"forward+backward {net:.2f} ms (forward alone {fwd:.2f} ms) + ASE/result handling\n"
        f"aten operator calls per forward+backward (nested calls included): {n_ops}\n\n{table}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", default="tiny")
    parser.add_argument("--systems", nargs="+", default=["aspirin-21", "water-box-999"])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    text = "\n".join(profile_system(args.student, s) for s in args.systems)
    out = Path(args.out or f"benchmarks/results/profile_{args.student}.txt")
    out.write_text(text)
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
