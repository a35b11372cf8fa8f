"""Held-out fidelity of students, molecule by molecule (issue 11's goals).

``python -m training.heldout DATASET OUT.json STUDENT [STUDENT ...]`` evaluates each student
(a registry name or a checkpoint path) on the held-out molecules' teacher MD frames at 300-600 K
of a generated dataset, and writes the numbers to ``OUT.json``, a table to ``OUT.md`` and a
per-molecule force-R2 chart to ``OUT.png``.

``--unseen N PATTERN`` (before DATASET) measures instead on the teacher MD frames of the N
training molecules that ``train.validation_molecules: N`` with ``validation_molecule_pattern:
PATTERN`` holds out: a validation set of molecules that no student being compared has seen,
for choosing between students by what the held-out goals measure (per-molecule offsets)
without looking at the held-out molecules. Its chart shows the per-molecule energy offsets.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ase import Atoms

from ase_distill.checkpoint import atomic_write_json
from ase_distill.registry import resolve_student

#: The split every CHNO target is measured on.
HELDOUT_SPLIT = "heldout_md_300_600K"


def heldout_md(frames: list[Atoms], max_temperature: float = 600.0) -> list[Atoms]:
    """Teacher MD frames (up to ``max_temperature``) of held-out molecules."""
    return [
        f
        for f in frames
        if f.info.get("split") == "test_molecule"
        and f.info.get("kind") == "md"
        and float(f.info.get("param", 0)) <= max_temperature
    ]


def unseen_md(frames: list[Atoms], count: int, pattern: str) -> list[Atoms]:
    """Teacher MD frames (<= 600 K) of the ``count`` validation molecules matching ``pattern``.

    The molecules are those :func:`training.train.hold_out_molecules` picks, so a run trained
    with the same ``validation_molecules`` and pattern never saw them.
    """
    from training.train import split_frames

    by_split, _ = split_frames(frames, 0.0, count, pattern)
    return [
        f
        for f in by_split["validation"]
        if f.info.get("kind") == "md" and float(f.info.get("param", 0)) <= 600.0
    ]


def evaluate_student(student: str, frames: list[Atoms]) -> dict[str, Any]:
    """Held-out report of one student (registry name or checkpoint) on ``frames``."""
    from training.train import evaluate_samples, prepare

    model, _ = resolve_student(student)
    samples = prepare(frames, model.config.cutoff, tuple(model.config.species))
    return evaluate_samples(model, samples, [f.info["seed"] for f in frames])


def summary_row(report: dict[str, Any]) -> dict[str, float]:
    """The goal metrics of a report, in one flat row."""
    keys = (
        "force_r2",
        "force_rmse",
        "force_angle_deg",
        "energy_mae_mev_per_atom",
        "energy_mae_offset_removed_mev_per_atom",
        "worst_molecule_force_r2",
    )
    return {k: round(float(report[k]), 5) for k in keys}


def markdown_table(summary: dict[str, dict[str, float]]) -> str:
    """The summary rows as a markdown table (the README and the cards quote it)."""
    lines = [
        "| student | force R2 | force RMSE (eV/A) | angle (deg) | energy MAE (meV/atom) | "
        "energy MAE, offset removed | worst molecule R2 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in summary.items():
        lines.append(
            f"| `{name}` | {r['force_r2']:.4f} | {r['force_rmse']:.3f} | "
            f"{r['force_angle_deg']:.1f} | {r['energy_mae_mev_per_atom']:.1f} | "
            f"{r['energy_mae_offset_removed_mev_per_atom']:.1f} | "
            f"{r['worst_molecule_force_r2']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def plot(reports: dict[str, dict[str, Any]], path: Path) -> None:
    """Force R2 per held-out molecule, one bar group per molecule and a bar per student."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    molecules = sorted(next(iter(reports.values()))["by_molecule"])
    fig, ax = plt.subplots(figsize=(1.2 * len(molecules) + 2, 4))
    width = 0.8 / len(reports)
    for k, (name, report) in enumerate(reports.items()):
        r2 = [report["by_molecule"][m]["force_r2"] for m in molecules]
        ax.bar(np.arange(len(molecules)) + k * width, r2, width, label=name)
    ax.set_xticks(np.arange(len(molecules)) + 0.4 - width / 2, molecules, rotation=30, ha="right")
    ax.set_ylim(0.9, 1.0)
    ax.set_ylabel("force R2 vs teacher")
    ax.set_title("held-out molecules, teacher MD 300-600 K")
    # beside the axes: inside, it hides the last molecules' bars
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_offsets(reports: dict[str, dict[str, Any]], path: Path) -> None:
    """Per-molecule energy offsets of each student (many molecules: a histogram per student)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(-15, 15, 61)
    for name, report in reports.items():
        offsets = [m["energy_offset_mev_per_atom"] for m in report["by_molecule"].values()]
        ax.hist(
            np.clip(offsets, -15, 15), bins, histtype="step", label="/".join(Path(name).parts[-2:])
        )
    ax.set_xlabel("energy offset per molecule (meV/atom), clipped to +-15")
    ax.set_ylabel("molecules")
    ax.set_title("unseen validation molecules, teacher MD 300-600 K")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """CLI (see the module docstring)."""
    from training.generate import read_dataset

    args = sys.argv[1:] if argv is None else argv
    unseen = None
    if args[:1] == ["--unseen"]:
        if len(args) < 3 or not args[1].isdigit():
            raise ValueError("--unseen needs a count and a name pattern: --unseen 120 'x4*'.")
        unseen, args = (int(args[1]), args[2]), args[3:]
    if len(args) < 3:
        print(__doc__)
        return 2
    dataset, out, students = args[0], Path(args[1]), args[2:]
    frames = read_dataset(dataset)
    frames = unseen_md(frames, *unseen) if unseen else heldout_md(frames)
    if not frames:
        which = "of its unseen validation molecules" if unseen else "held out (test_molecule)"
        raise ValueError(f"{dataset} has no MD frames at <= 600 K {which}.")
    reports = {s: evaluate_student(s, frames) for s in students}
    result = {
        "dataset": dataset,
        "split": f"unseen_{unseen[0]}_{unseen[1]}_md_300_600K" if unseen else HELDOUT_SPLIT,
        "frames": len(frames),
        "molecules": sorted({f.info["seed"] for f in frames}),
        "summary": {s: summary_row(r) for s, r in reports.items()},
        "reports": reports,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, result)
    (plot_offsets if unseen else plot)(reports, out.with_suffix(".png"))
    table = markdown_table(result["summary"])
    out.with_suffix(".md").write_text(table)
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
