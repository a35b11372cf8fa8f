"""How a student's energy offset differs between ensembles of teacher-labelled frames.

``python -m training.energy_offsets OUT.json STUDENT [STUDENT ...] --parts NAME=DATASET[:SPLIT]``
writes, for every student and part, the mean and mean absolute student-minus-teacher energy
per atom (meV/atom), and prints a table. ``SPLIT`` keeps only the frames of that split
(``validation``, ``test_molecule``, ...).

Why: a constant offset does not move MD, but an offset that differs between two ensembles does.
The ensemble energy gap of ``ase-distill validate`` measures that from two NVT runs; this is
its cheap version on frames already labelled (the teacher's liquid against the student's own
liquid), fast enough to screen fine-tuned candidates before any MD.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from ase_distill.checkpoint import atomic_write_json
from training.generate import ENERGY_KEY, read_dataset


def parse_part(text: str) -> tuple[str, str, str | None]:
    """``NAME=DATASET[:SPLIT]`` -> ``(name, dataset, split)``."""
    if "=" not in text:
        raise ValueError(f"A part is NAME=DATASET[:SPLIT], got {text!r}.")
    name, rest = text.split("=", 1)
    dataset, _, split = rest.partition(":")
    return name, dataset, split or None


def offsets(student: str, frames: list[Atoms]) -> np.ndarray:
    """Student-minus-teacher energy per atom of every frame, in meV/atom (float64, eager)."""
    from ase_distill.calculator import DistilledCalculator

    calc = DistilledCalculator(student)
    out = []
    for frame in frames:
        atoms = frame.copy()
        atoms.calc = calc
        out.append((atoms.get_potential_energy() - frame.info[ENERGY_KEY]) / len(frame))
    return np.array(out) * 1000


def run(out: str | Path, students: list[str], parts: list[str]) -> dict[str, Any]:
    """Offsets of every student on every part; written to ``out`` (JSON) and returned."""
    chosen = {}
    for text in parts:
        name, dataset, split = parse_part(text)
        frames = read_dataset(dataset)
        chosen[name] = [f for f in frames if split in (None, f.info.get("split"))]
        if not chosen[name]:
            raise ValueError(f"Part {text!r} selects no frame.")
    report: dict[str, Any] = {"parts": parts, "students": {}}
    for student in students:
        rows = {}
        for name, frames in chosen.items():
            o = offsets(student, frames)
            rows[name] = {"frames": len(o), "mean": float(o.mean()), "mae": float(abs(o).mean())}
        report["students"][student] = rows
        cells = "  ".join(f"{n} {r['mean']:+.2f} (MAE {r['mae']:.2f})" for n, r in rows.items())
        print(f"{student}: {cells}  [meV/atom]")
    atomic_write_json(Path(out), report)
    return report


def main(argv: list[str] | None = None) -> int:
    """CLI (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("output", help="JSON file for the numbers")
    p.add_argument("students", nargs="+", help="shipped names or checkpoints")
    p.add_argument("--parts", nargs="+", required=True, help="NAME=DATASET[:SPLIT]")
    args = p.parse_args(argv)
    run(args.output, args.students, args.parts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
