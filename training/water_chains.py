"""Start structures for parallel teacher chains: frames of one stored teacher run.

One teacher run cannot reach 20 ps in a session (SevenNet-0: 52 ms per step on an H200, 1.5-3 s
on a CPU core), and its frames are correlated over picoseconds. Several chains started from
frames of the run so far, each with its own Maxwell-Boltzmann velocities and Langevin seed
(``ase-distill validate --teacher-only --structure START --seed K``), run side by side on one
GPU and sample the same liquid more widely; every chain is an ordinary stored teacher run,
continued like any other. This writes the start frames, every ``every_ps`` back from the run's
last frame, as extended-XYZ files named by their time in the run, and gives each its own seed
in ``seeds.json`` beside them (kept: a chain's stored run is keyed by its seed).

    python -m training.water_chains reports/water/teacher_runs/KEY.traj \
        reports/water/chain_starts --count 7 --every-ps 0.5 [--until-ps 8.665 --prefix NAME]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from ase.io import read, write

from ase_distill.checkpoint import atomic_write_json


class ChainStartError(ValueError):
    """The stored run is too short for the asked starts, or a start file already exists."""


def start_frames(
    traj: Path, count: int, every_ps: float, until_ps: float | None = None
) -> list[tuple[float, object]]:
    """``(time in ps, frame)`` of ``count`` frames, ``every_ps`` apart, the latest first.

    The latest is the run's last frame, or its frame at ``until_ps`` (a run continued since).

    Raises:
        ChainStartError: the run is shorter than ``(count - 1) * every_ps``, or its record
            (``KEY.json`` beside it) does not give one time per frame.
    """
    times = json.loads(traj.with_suffix(".json").read_text())["time_ps"]
    frames = read(traj, ":")
    if len(times) != len(frames):
        raise ChainStartError(f"{traj}: {len(frames)} frames but {len(times)} times in its record.")
    if until_ps is not None:
        last = int(np.argmin(np.abs(np.asarray(times) - until_ps)))
        times, frames = times[: last + 1], frames[: last + 1]
    step = times[1] - times[0]
    stride = round(every_ps / step)
    if stride < 1 or (count - 1) * stride >= len(frames):
        raise ChainStartError(
            f"{traj} holds {times[-1]:.3f} ps: too short for {count} starts {every_ps} ps apart; "
            "ask for fewer (--count) or closer (--every-ps) starts."
        )
    picks = [len(frames) - 1 - k * stride for k in range(count)]
    return [(times[i], frames[i]) for i in picks]


def write_starts(
    traj: Path,
    out: Path,
    count: int,
    every_ps: float,
    until_ps: float | None = None,
    prefix: str | None = None,
) -> list[Path]:
    """Write the start frames as ``out/PREFIX_t{time}ps.xyz`` (positions, cell); return the paths.

    ``PREFIX`` defaults to the run's key (its file name) cut to 8 characters.

    Raises:
        ChainStartError: see :func:`start_frames`; or a start file exists (it may be the start
            of stored chains, which its positions key: it is never overwritten).
    """
    picked = start_frames(traj, count, every_ps, until_ps)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{prefix or traj.stem[:8]}_t{t:.3f}ps.xyz" for t, _ in picked]
    taken = [str(p) for p in paths if p.exists()]
    if taken:
        raise ChainStartError(f"start files exist: {', '.join(taken)}; remove them or pick --out.")
    for path, (_, frame) in zip(paths, picked):
        frame = frame.copy()
        frame.set_momenta(None)  # each chain draws its own velocities (--seed)
        tmp = path.with_name(path.name + ".tmp")
        write(tmp, frame, format="extxyz")
        tmp.replace(path)
    seeds_path = out / "seeds.json"
    seeds = json.loads(seeds_path.read_text()) if seeds_path.exists() else {}
    for path in sorted(paths):
        seeds[path.stem] = max(seeds.values(), default=0) + 1
    atomic_write_json(seeds_path, seeds)
    return paths


def main(argv: list[str] | None = None) -> int:
    """CLI (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("traj", type=Path, help="a stored teacher run's KEY.traj (KEY.json beside it)")
    p.add_argument("out", type=Path, help="folder for the start files")
    p.add_argument("--count", type=int, default=7)
    p.add_argument("--every-ps", type=float, default=0.5)
    p.add_argument("--until-ps", type=float, help="the latest start (default: the last frame)")
    p.add_argument("--prefix", help="start files' prefix (default: the run's key, 8 characters)")
    a = p.parse_args(argv)
    try:
        paths = write_starts(a.traj, a.out, a.count, a.every_ps, a.until_ps, a.prefix)
    except ChainStartError as exc:
        print(f"water_chains: error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(paths)} chain starts in {a.out}: {', '.join(p.name for p in paths)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
