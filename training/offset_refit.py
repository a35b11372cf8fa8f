"""Would per-element energy shifts fitted on unseen molecules remove the held-out offsets?

``python -m training.offset_refit DATASET UNSEEN.json HELDOUT.json STUDENT OUT.json`` reads the
per-molecule energy offsets of STUDENT from an unseen-molecule report and a held-out report
(``python -m training.heldout``), fits one energy shift per element (meV per atom of that
element, least squares on each molecule's composition fractions) to the unseen molecules'
offsets, and reports the mean absolute offset before and after the shift: on the unseen
molecules by 10-fold cross-validation (the evidence a release rule may use) and on the held-out
molecules with the shift fitted on all unseen ones (issue 11's energy ablation). Writes
``OUT.json``, ``OUT.md`` and a per-molecule bar chart ``OUT.png``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from ase_distill.checkpoint import atomic_write_json

ELEMENTS = (1, 6, 7, 8)  # H, C, N, O: the CHNO students' species
FOLDS = 10


def compositions(frames: list[Atoms], split: str) -> dict[str, np.ndarray]:
    """Each molecule's element fractions (H, C, N, O) in the frames of a report's split."""
    from training.heldout import heldout_md, unseen_md

    if split.startswith("unseen_"):  # training.heldout writes unseen_{count}_{pattern}_md_...
        _, count, pattern, *_ = split.split("_")
        frames = unseen_md(frames, int(count), pattern)
    else:
        frames = heldout_md(frames)
    out = {}
    for frame in frames:
        z = frame.get_atomic_numbers()
        out.setdefault(frame.info["seed"], np.array([(z == e).mean() for e in ELEMENTS]))
    return out


def offsets(report: dict[str, Any], student: str) -> dict[str, float]:
    """Per-molecule energy offsets (meV/atom) of ``student`` in a held-out report."""
    if student not in report["reports"]:
        raise ValueError(f"{student} is not in the report; it has {sorted(report['reports'])}.")
    molecules = report["reports"][student]["by_molecule"]
    return {m: r["energy_offset_mev_per_atom"] for m, r in molecules.items()}


def cross_validated(x: np.ndarray, y: np.ndarray, seed: int = 0) -> np.ndarray:
    """Each molecule's offset predicted by shifts fitted on the other folds."""
    order = np.random.default_rng(seed).permutation(len(y))
    predicted = np.zeros_like(y)
    for fold in np.array_split(order, FOLDS):
        rest = np.setdiff1d(order, fold)
        predicted[fold] = x[fold] @ np.linalg.lstsq(x[rest], y[rest], rcond=None)[0]
    return predicted


def refit(dataset: str, unseen: dict, heldout: dict, student: str) -> dict[str, Any]:
    """The shifts, and the mean absolute offsets before and after them."""
    from training.generate import read_dataset

    frames = read_dataset(dataset)
    comp_u, comp_h = compositions(frames, unseen["split"]), compositions(frames, heldout["split"])
    off_u, off_h = offsets(unseen, student), offsets(heldout, student)
    names_u, names_h = sorted(off_u), sorted(off_h)
    x_u, y_u = np.array([comp_u[n] for n in names_u]), np.array([off_u[n] for n in names_u])
    x_h, y_h = np.array([comp_h[n] for n in names_h]), np.array([off_h[n] for n in names_h])
    shift = np.linalg.lstsq(x_u, y_u, rcond=None)[0]
    after_h = y_h - x_h @ shift
    return {
        "student": student,
        "shift_mev_per_atom": dict(zip("HCNO", shift.round(3).tolist(), strict=True)),
        "unseen_molecules": len(y_u),
        "unseen_mean_abs_offset": float(np.abs(y_u).mean()),
        "unseen_mean_abs_offset_cross_validated": float(
            np.abs(y_u - cross_validated(x_u, y_u)).mean()
        ),
        "heldout_mean_abs_offset": float(np.abs(y_h).mean()),
        "heldout_mean_abs_offset_after_shift": float(np.abs(after_h).mean()),
        "heldout_offsets": {
            n: [float(a), float(b)] for n, a, b in zip(names_h, y_h, after_h, strict=True)
        },
    }


def plot(result: dict[str, Any], path: Path) -> None:
    """Held-out offsets per molecule, before and after the shift."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["heldout_offsets"])
    before, after = np.array(list(result["heldout_offsets"].values())).T
    fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2, 4))
    ax.bar(np.arange(len(names)) - 0.2, before, 0.4, label="student")
    ax.bar(np.arange(len(names)) + 0.2, after, 0.4, label="+ per-element shift (unseen fit)")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(np.arange(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("energy offset (meV/atom)")
    ax.set_title(f"held-out offsets, {result['student']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """CLI (see the module docstring)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 5:
        print(__doc__)
        return 2
    dataset, unseen_path, heldout_path, student, out = args
    unseen, heldout = (json.loads(Path(p).read_text()) for p in (unseen_path, heldout_path))
    if not unseen["split"].startswith("unseen_"):
        raise ValueError(f"{unseen_path} is not an unseen-molecule report (heldout --unseen).")
    result = refit(dataset, unseen, heldout, student)
    out = Path(out)
    atomic_write_json(out, result)
    plot(result, out.with_suffix(".png"))
    r = result
    table = (
        "| student | unseen mean abs offset | 10-fold CV after shift | held out |"
        " held out after shift |\n|---|---|---|---|---|\n"
        f"| `{student}` | {r['unseen_mean_abs_offset']:.2f} | "
        f"{r['unseen_mean_abs_offset_cross_validated']:.2f} | "
        f"{r['heldout_mean_abs_offset']:.2f} | {r['heldout_mean_abs_offset_after_shift']:.2f} |\n"
    )
    out.with_suffix(".md").write_text(table)
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
