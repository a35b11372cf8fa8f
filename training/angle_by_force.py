"""Where a student's mean force angle error comes from, by the size of the teacher's force.

``python -m training.angle_by_force DATASET STUDENT [STUDENT ...] [--split validation]
[--edges 0.1 0.25 ...]`` prints, per student, its mean angle error on the held-out molecules'
teacher MD frames (300-600 K, :func:`training.heldout.heldout_md`; or on ``--split``) and,
for each band of teacher force magnitude (eV/A), the share of atoms in it, their mean angle
error and their contribution to the mean (degrees; the contributions add up to the mean).
Atoms under the metric's own floor (:data:`ase_distill.metrics.ANGLE_MIN_FORCE`) are left
out, as the held-out report does.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
from ase import Atoms

from ase_distill.metrics import ANGLE_MIN_FORCE, force_angle_errors
from ase_distill.registry import resolve_student

#: Band edges (eV/A): the lowest is the angle metric's floor, the last band is open.
DEFAULT_EDGES = (ANGLE_MIN_FORCE, 0.25, 0.5, 1.0, 2.0)


def angle_by_force(
    student: str, frames: list[Atoms], edges: tuple[float, ...] = DEFAULT_EDGES
) -> dict[str, Any]:
    """The mean angle error of ``student`` on ``frames`` and its parts by teacher force band."""
    from training.train import predict, prepare

    model, _ = resolve_student(student)  # a fresh copy: converting it changes nothing shared
    model = model.double()  # predict evaluates in float64, as the card metrics do
    samples = prepare(frames, model.config.cutoff, tuple(model.config.species))
    ref = np.concatenate([s.forces for s in samples])
    angles = force_angle_errors(predict(model, samples)["forces"], ref)
    size = np.linalg.norm(ref, axis=1)
    size = size[size >= ANGLE_MIN_FORCE]  # the atoms force_angle_errors kept, in order
    bands = []
    for lo, hi in zip(edges, (*edges[1:], np.inf), strict=True):
        inside = (size >= lo) & (size < hi)
        bands.append(
            {
                "from": lo,
                "to": hi,
                "share": float(inside.mean()),
                "angle_deg": float(angles[inside].mean()) if inside.any() else float("nan"),
                "contribution_deg": float(angles[inside].sum() / angles.size),
            }
        )
    return {"force_angle_deg": float(angles.mean()), "bands": bands}


def main(argv: list[str] | None = None) -> int:
    """CLI (see the module docstring)."""
    from training.generate import read_dataset
    from training.heldout import heldout_md

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("students", nargs="+")
    parser.add_argument("--split", help="a split of DATASET instead of the held-out MD frames")
    parser.add_argument("--edges", type=float, nargs="+", default=list(DEFAULT_EDGES))
    args = parser.parse_args(argv)
    if sorted(args.edges) != args.edges or args.edges[0] < ANGLE_MIN_FORCE:
        raise ValueError(
            f"--edges must rise and start at or above {ANGLE_MIN_FORCE} eV/A (the angle "
            f"metric's floor); got {args.edges}"
        )
    if args.split:
        frames = read_dataset(args.dataset, args.split)
    else:
        frames = heldout_md(read_dataset(args.dataset))
    for student in args.students:
        row = angle_by_force(student, frames, tuple(args.edges))
        print(f"{student}: mean angle error {row['force_angle_deg']:.2f} deg")
        for band in row["bands"]:
            print(
                f"  |F| {band['from']:g}-{band['to']:g} eV/A: {band['share']:.1%} of atoms, "
                f"{band['angle_deg']:.1f} deg, {band['contribution_deg']:.2f} deg of the mean"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
