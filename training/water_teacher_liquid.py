"""The teacher's own equilibrated liquid: frames of stored teacher NVT runs, labelled.

Water-tiny rates SevenNet-0's liquid 3.4 meV/atom higher, relative to its own, than
SevenNet-0 does (the ensemble energy gap, README water section), and labels of its own frames
do not change that (``training/water_onpolicy.py``): it never visits the teacher's liquid. The
data it needs is the teacher's NVT, which ``ase-distill validate --teacher-only --structure BOX
--teacher-runs DIR`` computes and resumes across sessions. This module turns those stored runs
into training frames: for every start structure, the longest stored run that begins with it,
its frames after ``discard_ps`` (equilibration from the TIP3P start), every ``every``-th.

The stored trajectories keep positions only, so every frame is labelled again (energy,
forces, stress); the label's energy is checked against the energy stored with the run (the
same teacher on the same positions). The last ``validation_fraction`` of each run's frames
form the validation split (a block in time: neighbouring frames are correlated), the rest
train. Labels resume in chunks (``labelled.xyz``); a finished folder (``summary.json``) is
left alone.

``python -m training.water_teacher_liquid OUT --runs DIR --structures BOX.xyz ...``, then
``python -m training.combine`` to join ``OUT`` with the dataset.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.io import read

from training.generate import ENERGY_KEY
from training.water_onpolicy import label, write_dataset


class NoStoredRunError(ValueError):
    """No stored teacher run starts from a given structure."""


def longest_run(folder: Path, start: Atoms) -> tuple[dict[str, Any], list[Atoms]]:
    """The stored run (``KEY.json`` + ``KEY.traj``) with most steps whose first frame is ``start``.

    Runs that failed (the stability checks stopped them) are not used.

    Raises:
        NoStoredRunError: no run in ``folder`` that did not fail begins with these positions
            and this cell.
    """
    found, failed = [], []
    for meta_path in folder.glob("*.json"):
        traj = meta_path.with_suffix(".traj")
        if not traj.is_file():
            continue
        first = read(traj, index=0)
        same = len(first) == len(start) and np.allclose(first.cell[:], start.cell[:])
        if same and np.allclose(first.positions, start.positions, atol=1e-6):
            meta = json.loads(meta_path.read_text())
            if meta.get("failure"):  # an unstable teacher run is no liquid to learn
                failed.append(f"{meta_path.stem}: {meta['failure']}")
            else:
                found.append((meta["steps_done"], meta_path.stem, meta))
    if not found and failed:
        raise NoStoredRunError(f"Every stored run from this structure failed: {failed}.")
    if not found:
        raise NoStoredRunError(
            f"No stored run in {folder} starts from this structure; run `ase-distill validate "
            f"--teacher-only --structure ... --teacher-runs {folder}` first."
        )
    _, key, meta = max(found)
    return meta, read(folder / f"{key}.traj", index=":")


def sample(
    seed: str,
    meta: dict[str, Any],
    frames: list[Atoms],
    discard_ps: float,
    every: int,
    validation_fraction: float,
    until_ps: float = float("inf"),
) -> list[Atoms]:
    """Frames from ``discard_ps`` to ``until_ps``, every ``every``-th, the last fraction validation.

    ``until_ps`` keeps a dataset the same after its runs are continued. Each frame keeps the
    run's stored energy (``run_energy``) for the check after labelling.
    """
    times = meta["time_ps"]
    kept = [i for i, t in enumerate(times) if discard_ps <= t <= until_ps + 1e-9][::every]
    n_validation = int(round(len(kept) * validation_fraction))
    temperature = meta["settings"]["temperature_K"]
    out = []
    for k, i in enumerate(kept):
        frame = Atoms(frames[i].numbers, frames[i].positions, cell=frames[i].cell, pbc=True)
        frame.wrap()
        t_ps = meta["time_ps"][i]
        frame.info.update(
            seed=seed,
            split="validation" if k >= len(kept) - n_validation else "train",
            kind="teacher_nvt",
            param=float(temperature),
            task=f"{seed}__teacher_nvt_{temperature:.0f}_{t_ps:.3f}ps",
            run_energy=float(meta["epot"][i]),
        )
        out.append(frame)
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Sample, label and summarise into ``args.output`` (see the module docstring)."""
    out = Path(args.output)
    if (out / "summary.json").is_file():
        raise FileExistsError(f"{out} is finished (summary.json); choose another output folder.")
    frames, runs = [], {}
    for path in map(Path, args.structures):
        meta, trajectory = longest_run(Path(args.runs), read(path))
        picked = sample(
            path.stem, meta, trajectory, args.discard_ps, args.every, args.validation, args.until_ps
        )
        if not picked:
            raise ValueError(
                f"The stored run of {path} is {meta['time_ps'][-1]:.3f} ps long, no longer than "
                f"--discard-ps {args.discard_ps}; continue it or lower --discard-ps."
            )
        frames += picked
        runs[path.stem] = {"ps": min(meta["time_ps"][-1], args.until_ps), "frames": len(picked)}
    out.mkdir(parents=True, exist_ok=True)
    labelled = label(args.teacher, frames, out / "labelled.xyz")
    mismatch = max(abs(f.info[ENERGY_KEY] - f.info["run_energy"]) / len(f) for f in labelled)
    for frame in labelled:
        frame.info.pop("run_energy")
    summary = write_dataset(
        out, labelled, args, runs=runs, max_label_vs_run_energy_mev_per_atom=mismatch * 1000
    )
    print(
        f"teacher liquid: {len(labelled)} frames {summary['splits']} from {runs}; labels match "
        f"the runs' energies to {mismatch * 1000:.3f} meV/atom -> {out}/dataset.xyz"
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    """CLI (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("output", help="folder for labelled and dataset .xyz, summary.json")
    p.add_argument("--runs", required=True, help="the teacher run store (KEY.json + KEY.traj)")
    p.add_argument("--structures", nargs="+", required=True, help="the runs' start structures")
    p.add_argument("--teacher", default="sevennet-0")
    p.add_argument("--discard-ps", type=float, default=1.0, help="equilibration not sampled")
    p.add_argument("--until-ps", type=float, default=float("inf"), help="last time sampled")
    p.add_argument("--every", type=int, default=1, help="every n-th stored frame")
    p.add_argument("--validation", type=float, default=0.2, help="last fraction of each run")
    args = p.parse_args(argv)
    if args.every < 1 or not 0 <= args.validation < 1:
        raise ValueError("--every must be >= 1 and --validation in [0, 1).")
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
