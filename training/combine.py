"""Combine generated datasets into one (same teacher): ``python -m training.combine OUT A B ...``.

Each input is a folder written by ``ase-distill generate``. Frames keep their splits; the new
``OUT/summary.json`` lists every part, and refuses parts labelled by different teachers (their
energies would not be comparable). ``--drop-seed NAME`` (repeatable) leaves out every frame of
one seed molecule, e.g. a library entry found to be a tautomer of a held-out molecule.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

from ase_distill.checkpoint import atomic_write_bytes, atomic_write_json
from training.generate import _frames_bytes, read_dataset


def combine(
    out: str | Path, parts: list[str | Path], drop_seeds: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Write ``out/dataset.xyz`` and ``out/summary.json`` from the generated folders ``parts``.

    Args:
        out: the folder to write.
        parts: generated (or combined) dataset folders.
        drop_seeds: seed molecules whose frames are left out (recorded in the summary).

    Raises:
        ValueError: a part without a finished dataset, parts from different teachers, or a
            seed to drop that no part holds.
    """
    import json

    summaries = []
    frames = []
    for part in map(Path, parts):
        if not (part / "summary.json").is_file():
            raise ValueError(f"{part} holds no finished dataset (no summary.json); generate it.")
        summaries.append(json.loads((part / "summary.json").read_text()))
        frames += read_dataset(part / "dataset.xyz")
    seeds = {f.info["seed"] for f in frames}
    unknown = sorted(set(drop_seeds) - seeds)
    if unknown:
        raise ValueError(f"--drop-seed {unknown}: no part holds frames of these seeds.")
    frames = [f for f in frames if f.info["seed"] not in drop_seeds]
    teachers = {json.dumps(s["teacher"], sort_keys=True) for s in summaries}
    if len(teachers) > 1:
        raise ValueError(f"The parts were labelled by different teachers: {sorted(teachers)}.")
    splits = dict(Counter(f.info["split"] for f in frames))
    summary = {
        "complete": True,
        "frames": len(frames),
        "splits": splits,
        "molecules": sorted({m for s in summaries for m in s["molecules"]} - set(drop_seeds)),
        "dropped_seeds": sorted(drop_seeds),
        "holdout_molecules": sorted({m for s in summaries for m in s["holdout_molecules"]}),
        "elements": sorted({z for s in summaries for z in s["elements"]}),
        "teacher": summaries[0]["teacher"],
        # a part that is itself a combination records its parts instead of one config
        "parts": {
            str(p): {"frames": s["frames"], "config": s.get("config", s.get("parts"))}
            for p, s in zip(parts, summaries)
        },
    }
    summary["by_library"] = _library_counts(summaries, frames)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "dataset.xyz", _frames_bytes(frames))
    atomic_write_json(out / "summary.json", summary)
    return summary


def _library_counts(summaries: list[dict[str, Any]], frames: list) -> dict[str, Any] | None:
    """Molecules and frames by category, group and ring system over the parts' libraries.

    ``None`` when no part was generated from a library (a part that is itself a combination
    records its parts, not a library, and is not counted).
    """
    from training.generate import library_counts, read_library

    entries = []
    for s in summaries:
        config = s.get("config") or {}
        if config.get("library"):
            entries += read_library(config["library"])[: config.get("library_size") or None]
    return library_counts(entries, frames) if entries else None


def main(argv: list[str] | None = None) -> int:
    """CLI (see the module docstring)."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("parts", nargs="+")
    parser.add_argument("--drop-seed", action="append", default=[], metavar="NAME")
    args = parser.parse_args(argv)
    summary = combine(args.out, args.parts, tuple(args.drop_seed))
    print(f"{summary['frames']} frames {summary['splits']} -> {args.out}/dataset.xyz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
