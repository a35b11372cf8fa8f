"""Combine generated datasets into one (same teacher): ``python -m training.combine OUT A B ...``.

Each input is a folder written by ``ase-distill generate``. Frames keep their splits; the new
``OUT/summary.json`` lists every part, and refuses parts labelled by different teachers (their
energies would not be comparable).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

from ase_distill.checkpoint import atomic_write_bytes, atomic_write_json
from training.generate import _frames_bytes, read_dataset


def combine(out: str | Path, parts: list[str | Path]) -> dict[str, Any]:
    """Write ``out/dataset.xyz`` and ``out/summary.json`` from the generated folders ``parts``.

    Raises:
        ValueError: a part without a finished dataset, or parts from different teachers.
    """
    import json

    summaries = []
    frames = []
    for part in map(Path, parts):
        if not (part / "summary.json").is_file():
            raise ValueError(f"{part} holds no finished dataset (no summary.json); generate it.")
        summaries.append(json.loads((part / "summary.json").read_text()))
        frames += read_dataset(part / "dataset.xyz")
    teachers = {json.dumps(s["teacher"], sort_keys=True) for s in summaries}
    if len(teachers) > 1:
        raise ValueError(f"The parts were labelled by different teachers: {sorted(teachers)}.")
    splits = dict(Counter(f.info["split"] for f in frames))
    summary = {
        "complete": True,
        "frames": len(frames),
        "splits": splits,
        "molecules": sorted({m for s in summaries for m in s["molecules"]}),
        "holdout_molecules": sorted({m for s in summaries for m in s["holdout_molecules"]}),
        "elements": sorted({z for s in summaries for z in s["elements"]}),
        "teacher": summaries[0]["teacher"],
        # a part that is itself a combination records its parts instead of one config
        "parts": {
            str(p): {"frames": s["frames"], "config": s.get("config", s.get("parts"))}
            for p, s in zip(parts, summaries)
        },
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "dataset.xyz", _frames_bytes(frames))
    atomic_write_json(out / "summary.json", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    """CLI (see the module docstring)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3:
        print(__doc__)
        return 2
    summary = combine(args[0], args[1:])
    print(f"{summary['frames']} frames {summary['splits']} -> {args[0]}/dataset.xyz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
