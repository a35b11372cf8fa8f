"""A student on sets of labelled frames: energy offset per set and intermolecular forces.

``python -m training.frame_fidelity OUT.json STUDENT [STUDENT ...] --parts NAME=DATASET[:SPLIT]``
writes, for every student and part, the mean and mean absolute student-minus-teacher energy
per atom (meV/atom), the atomic force R2 and the fidelity of the net force on each molecule,
and prints a table. ``SPLIT`` keeps only the frames of that split (``validation``,
``test_molecule``, ...).

Why: a constant energy offset does not move MD, but an offset that differs between two
ensembles does (the ensemble energy gap of ``ase-distill validate`` measures that from two NVT
runs; the offsets here are its cheap version on frames already labelled); and in a molecular
liquid the structure is set by the net force on each molecule, which an atomic force R2 near 1
can hide (:func:`md_validation.metrics.molecular_force_fidelity`). Both screen fine-tuned
candidates before any MD.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from ase_distill.checkpoint import atomic_write_json
from training.generate import ENERGY_KEY, FORCES_KEY, read_dataset


def parse_part(text: str) -> tuple[str, str, str | None]:
    """``NAME=DATASET[:SPLIT]`` -> ``(name, dataset, split)``."""
    if "=" not in text:
        raise ValueError(f"A part is NAME=DATASET[:SPLIT], got {text!r}.")
    name, rest = text.split("=", 1)
    dataset, _, split = rest.partition(":")
    return name, dataset, split or None


def fidelity(student: str, frames: list[Atoms]) -> dict[str, float]:
    """Energy offsets (meV/atom), atomic and molecular force fidelity (float64, eager)."""
    from ase_distill.calculator import DistilledCalculator
    from ase_distill.metrics import force_metrics
    from md_validation.metrics import molecular_force_fidelity

    calc = DistilledCalculator(student)
    offsets, pred, ref = [], [], []
    for frame in frames:
        atoms = frame.copy()
        atoms.calc = calc
        offsets.append((atoms.get_potential_energy() - frame.info[ENERGY_KEY]) / len(frame))
        pred.append(atoms.get_forces())
        ref.append(frame.arrays[FORCES_KEY])
    o = np.array(offsets) * 1000
    row = {"frames": len(o), "mean": float(o.mean()), "mae": float(abs(o).mean())}
    row["force_r2"] = force_metrics(np.concatenate(pred), np.concatenate(ref))["force_r2"]
    row.update(molecular_force_fidelity(frames, pred, ref) or {})
    return row


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
            rows[name] = fidelity(student, frames)
        report["students"][student] = rows
        for name, r in rows.items():
            net = r.get("molecular_net_force_r2", float("nan"))
            print(
                f"{student} on {name} ({r['frames']} frames): energy offset {r['mean']:+.2f} "
                f"meV/atom (MAE {r['mae']:.2f}); force R2 {r['force_r2']:.4f}; "
                f"molecular net force R2 {net:.3f}"
            )
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
