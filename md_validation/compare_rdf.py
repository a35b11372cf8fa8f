"""Compare the structure of stored periodic trajectories: total RDF h and O-O shell measures.

``ase-distill validate`` compares one student run with one teacher run. This compares any
stored runs (or slices of them) with each other, for questions such as: does the teacher keep
the student's structure when started from it? Every pair gets the total-RDF h of
:func:`md_validation.metrics.h_error` (the validation's measure), and every run the mean O-O
g(r) over the first shell (2.55-2.95 A) and the first minimum (3.1-3.6 A) on windows of equal
length, so that ordering over time shows.

``python -m md_validation.compare_rdf OUT.json LABEL=PATH[@START:STOP][+PATH...] ...
[--window FRAMES]`` (``START:STOP`` in frames, as in ``ase.io.read``; ``+`` pools the frames of
several runs or slices under one label, e.g. two runs of one teacher that agree).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read

from ase_distill.checkpoint import atomic_write_json
from md_validation.metrics import h_error, rdf

SHELL_A = (2.55, 2.95)  # the O-O first peak of liquid water
MINIMUM_A = (3.1, 3.6)  # the first minimum, which deepens as the H-bond network orders
BONDED_BELOW_A = 1.75  # water's intramolecular peaks (O-H 0.97 A, H-H 1.53 A) lie below this


def _mean_in(x: np.ndarray, y: np.ndarray, bounds: tuple[float, float]) -> float:
    return float(y[(x > bounds[0]) & (x < bounds[1])].mean())


def oo_order(frames: list[Atoms], window: int) -> list[dict[str, float]]:
    """Mean O-O g(r) over the first shell and the first minimum, window by window."""
    out = []
    for start in range(0, len(frames) - window + 1, window):
        x, y = rdf(frames[start : start + window], pair=(8, 8))
        out.append({"shell": _mean_in(x, y, SHELL_A), "minimum": _mean_in(x, y, MINIMUM_A)})
    return out


def read_frames(spec: str) -> list[Atoms]:
    """Periodic frames of ``PATH[@START:STOP][+PATH...]`` (``+`` pools runs or slices)."""
    frames: list[Atoms] = []
    for part in spec.split("+"):
        path, _, index = part.partition("@")
        if not Path(path).is_file():
            raise ValueError(f"{path} does not exist (from {spec!r}).")
        got = read(path, index or ":")
        frames += got if isinstance(got, list) else [got]
    if not frames or not all(f.pbc.all() for f in frames):
        raise ValueError(f"{spec!r} holds no periodic frames; RDFs need periodic cells.")
    return frames


def _load(spec: str) -> tuple[str, list[Atoms]]:
    label, sep, rest = spec.partition("=")
    if not sep:
        raise ValueError(f"{spec!r} must look like LABEL=PATH or LABEL=PATH@START:STOP.")
    return label, read_frames(rest)


def h_below(x: np.ndarray, reference: np.ndarray, other: np.ndarray, r: float) -> float:
    """The part of :func:`h_error` that comes from distances below ``r``."""
    dx = float(x[1] - x[0])
    diff = np.sum(np.abs(reference - other)[x < r]) * dx
    return float(diff / (np.sum(np.abs(reference)) * dx))


def compare(specs: list[str], window: int, intermolecular: bool = False) -> dict:
    """Pairwise total-RDF h and per-run O-O order of ``LABEL=PATH[@START:STOP]`` runs.

    With ``intermolecular``, also the h of RDFs without the pairs inside each molecule: the
    liquid's structure alone (a total RDF's bond peaks weigh in both the difference and the
    normalisation of h).
    """
    labels = [s.partition("=")[0] for s in specs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"Labels must differ (each names one run), got {labels}.")
    runs = dict(_load(s) for s in specs)
    curves = {label: rdf(frames) for label, frames in runs.items()}
    pairs = {
        f"{a} vs {b}": h_error(curves[a][0], curves[a][1], curves[b][1])
        for a, b in itertools.combinations(runs, 2)
    }
    below = {
        f"{a} vs {b}": h_below(curves[a][0], curves[a][1], curves[b][1], BONDED_BELOW_A)
        for a, b in itertools.combinations(runs, 2)
    }
    out = {
        "runs": {label: {"frames": len(runs[label]), "spec": s} for label, s in zip(labels, specs)},
        "total_rdf_h": pairs,
        f"total_rdf_h_from_below_{BONDED_BELOW_A}A": below,
        "oo_order": {label: oo_order(f, window) for label, f in runs.items()},
        "window_frames": window,
        "bounds_A": {"shell": SHELL_A, "minimum": MINIMUM_A},
    }
    if intermolecular:
        inter = {label: rdf(frames, intermolecular=True) for label, frames in runs.items()}
        out["intermolecular_rdf_h"] = {
            f"{a} vs {b}": h_error(inter[a][0], inter[a][1], inter[b][1])
            for a, b in itertools.combinations(runs, 2)
        }
    return out


def main(argv: list[str] | None = None) -> int:
    """CLI (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("output", help="JSON file for the numbers")
    p.add_argument("runs", nargs="+", help="LABEL=PATH[@START:STOP][+...] (two or more)")
    p.add_argument("--window", type=int, default=100, help="frames per O-O order window")
    p.add_argument(
        "--intermolecular", action="store_true", help="also h without intramolecular pairs"
    )
    args = p.parse_args(argv)
    if len(args.runs) < 2 or args.window < 1:
        raise ValueError("Give two or more runs and --window >= 1.")
    result = compare(args.runs, args.window, args.intermolecular)
    atomic_write_json(Path(args.output), result)
    below = result[f"total_rdf_h_from_below_{BONDED_BELOW_A}A"]
    for pair, h in result["total_rdf_h"].items():
        inter = result.get("intermolecular_rdf_h", {}).get(pair)
        extra = "" if inter is None else f"; intermolecular {inter:.3f}"
        print(f"total RDF h {pair}: {h:.3f} ({below[pair]:.3f} from r < {BONDED_BELOW_A} A{extra})")
    for label, windows in result["oo_order"].items():
        text = " ".join(f"{w['shell']:.2f}/{w['minimum']:.2f}" for w in windows)
        print(f"O-O shell/minimum {label}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
