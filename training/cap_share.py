"""How much of a split's force error comes from frames above the training force cap.

``python -m training.cap_share DATASET STUDENT [STUDENT ...] [--split validation] [--cap 30]``
prints, per student, the force RMSE of the split, the RMSE of its frames whose largest teacher
force component is at most ``cap`` (eV/A), and the share of the squared error from the others.
Training leaves those frames out (``train.max_force``) but validation keeps them, so they can
rule a stage's choice of best epoch (third CHNO generation, README).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
from ase import Atoms

from ase_distill.registry import resolve_student


def cap_share(student: str, frames: list[Atoms], cap: float) -> dict[str, Any]:
    """Force RMSE of ``frames``, of those under ``cap``, and the squared-error share above it."""
    from training.train import filter_frames, predict, prepare

    model, _ = resolve_student(student)  # a fresh copy: converting it changes nothing shared
    model = model.double()  # predict evaluates in float64, as the card metrics do
    samples = prepare(frames, model.config.cutoff, tuple(model.config.species))
    pred = predict(model, samples)
    kept = {id(f) for f in filter_frames(frames, cap)}  # training's own rule for the cap
    above = np.concatenate([np.full(len(f), id(f) not in kept) for f in frames])
    squared = ((pred["forces"] - np.concatenate([s.forces for s in samples])) ** 2).sum(axis=1)
    return {
        "force_rmse": float(np.sqrt(squared.mean() / 3)),
        "force_rmse_below_cap": float(np.sqrt(squared[~above].mean() / 3)),
        "share_above_cap": float(squared[above].sum() / squared.sum()),
        "frames_above_cap": len(frames) - len(kept),
        "frames": len(frames),
    }


def main(argv: list[str] | None = None) -> int:
    """CLI (see the module docstring)."""
    from training.generate import read_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("students", nargs="+")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--cap", type=float, default=30.0, help="eV/A (train.max_force)")
    args = parser.parse_args(argv)
    frames = read_dataset(args.dataset, args.split)
    for student in args.students:
        row = cap_share(student, frames, args.cap)
        print(
            f"{student}: force RMSE {row['force_rmse']:.4f} eV/A, {row['force_rmse_below_cap']:.4f}"
            f" below the cap; {row['share_above_cap']:.1%} of the squared error from the "
            f"{row['frames_above_cap']} of {row['frames']} frames above {args.cap:g} eV/A"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
