"""On-policy water frames: the student's own equilibrated liquid, labelled by the teacher.

The water data (``training/make_water.sh``) holds 20 fs of teacher MD per packed box plus
rattles and strains: no equilibrated liquid. The water-tiny distilled from it, run for 20 ps
at 300 K, slowly over-structured its O-O shell (first peak 3.3 -> 4.0-4.5; RDF h 0.048 against
SevenNet-0), and it rated the frames it visited about 2 meV/atom lower, relative to the
teacher, than the teacher's own NVT frames (+1.5-2.7 meV/atom): a bias of ~13 kT per box
in favour of its own structure. A force committee cannot see such a bias (every member
shares it), so frames are chosen by time, not by disagreement: Langevin runs of the student
from the dataset's boxes, one frame every ``interval`` steps after ``discard_ps``.

Frames from training boxes join the training split, those from validation boxes the
validation split (so model selection sees the student's own liquid); held-out boxes are not
run. Every step resumes: the explored frames are written once (``explored.xyz``), labels in
chunks (``labelled.xyz``), and a finished folder (``summary.json``) is left alone.

``python -m training.water_onpolicy STUDENT DATASET OUT [--teacher sevennet-0] ...``, then
``python -m training.combine`` to join ``OUT`` with the dataset.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.io import read
from tqdm import tqdm

from ase_distill.checkpoint import atomic_write_bytes, atomic_write_json
from training.generate import ENERGY_KEY, FORCES_KEY, STRESS_KEY, _frames_bytes, read_dataset

SPLITS = ("train", "validation")  # boxes of these splits are explored; held-out ones never


def starts_by_split(
    dataset: str | Path, boxes: int = 0, seeds: list[str] | None = None
) -> list[Atoms]:
    """The first frame of liquid boxes: every validation box, then training boxes in order.

    Args:
        dataset: the water dataset (liquid boxes have seeds ``box_NN``).
        boxes: at most this many boxes (0: all).
        seeds: only these boxes, in this order (each must be a training or validation box).

    Raises:
        ValueError: a box of ``seeds`` is not a training or validation box of ``dataset``.
    """
    seen: dict[str, Atoms] = {}
    for frame in read_dataset(dataset):
        seed = str(frame.info.get("seed"))
        if frame.info.get("split") in SPLITS and seed.startswith("box_"):
            seen.setdefault(seed, frame)
    if seeds:
        missing = [s for s in seeds if s not in seen]
        if missing:
            raise ValueError(
                f"{missing} are no training or validation boxes of {dataset} (held-out boxes "
                f"are never explored); choose among {sorted(seen)}."
            )
        ordered = [seen[s] for s in seeds]
    else:
        ordered = sorted(seen.values(), key=lambda a: SPLITS.index(a.info["split"]), reverse=True)
    return ordered[:boxes] if boxes else ordered


def explore(
    student: str,
    starts: list[Atoms],
    temperatures: list[float],
    ps: float,
    discard_ps: float,
    interval: int,
    seed: int = 0,
    compile: bool = True,
    partial: Path | None = None,
    kind: str = "onpolicy",
) -> list[Atoms]:
    """Langevin MD of the student (compiled, float32) from every start, one box at a time.

    Start ``k`` runs at ``temperatures[k % len(temperatures)]``. Returns frames (wrapped into
    the cell) every ``interval`` steps after ``discard_ps``, each with its start's ``seed``,
    ``split`` and the run's temperature. One box per call: batching 96-atom boxes made each
    step slower per box on one thread (7 boxes: 225 ms against 7 x 18 ms).

    With ``partial``, the frames so far are written there after every box, and boxes found
    there are not run again (their velocities are still drawn, so that a resumed run draws
    the same numbers as one that was never killed). Frames carry ``kind`` (one per round of
    ``training.ensemble_gap``, whose student ensemble must be the newest student's).
    """
    import torch

    from ase_distill.batch import BatchedMD, BatchEvaluator
    from ase_distill.md import initial_velocities

    steps, first = int(round(ps * 2000)), int(round(discard_ps * 2000))  # 0.5 fs steps
    evaluator = BatchEvaluator(student, dtype=torch.float32, compile=compile)
    rng = np.random.default_rng(seed)
    frames = read(partial, index=":", format="extxyz") if partial and partial.is_file() else []
    done = {f.info["seed"] for f in frames}
    for k, start in enumerate(tqdm(starts, desc="student NVT runs")):
        temperature = temperatures[k % len(temperatures)]
        bare = Atoms(start.numbers, start.positions, cell=start.cell, pbc=True)
        system = initial_velocities(bare, temperature, rng)
        if start.info["seed"] in done:
            continue
        md = BatchedMD([system], evaluator, 0.5, "langevin", temperature, seed + k)
        for step in range(1, steps + 1):
            md.step()
            if step > first and step % interval == 0:
                frames.append(_snapshot(md.positions, start, temperature, step, kind))
        if partial:
            atomic_write_bytes(partial, _frames_bytes(frames))
    return frames


def _snapshot(
    positions: np.ndarray, start: Atoms, temperature: float, step: int, kind: str
) -> Atoms:
    frame = Atoms(start.numbers, positions.copy(), cell=start.cell, pbc=True)
    frame.wrap()
    frame.info.update(
        seed=start.info["seed"],
        split=start.info["split"],
        kind=kind,
        param=temperature,
        task=f"{start.info['seed']}__{kind}_{temperature:.0f}_{step}",
    )
    return frame


def label(teacher_name: str, frames: list[Atoms], path: Path, chunk: int = 25) -> list[Atoms]:
    """Teacher labels for ``frames``, appended to ``path`` every ``chunk`` frames (resumes)."""
    from training.teachers import make_teacher

    done = read(path, index=":", format="extxyz") if path.is_file() else []
    teacher = make_teacher(teacher_name)
    for frame in tqdm(frames[len(done) :], desc="teacher labels", mininterval=10):
        result = teacher.label(frame)
        out = Atoms(frame.numbers, frame.positions, cell=frame.cell, pbc=frame.pbc)
        out.info.update(frame.info, teacher=teacher_name)
        out.info[ENERGY_KEY] = result.info["energy"]
        out.info[STRESS_KEY] = result.info["stress"]
        out.arrays[FORCES_KEY] = result.arrays["forces"]
        done.append(out)
        if len(done) % chunk == 0 or len(done) == len(frames):
            atomic_write_bytes(path, _frames_bytes(done))
    return done


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Explore, label and summarise into ``args.output`` (see the module docstring)."""
    out = Path(args.output)
    if (out / "summary.json").is_file():
        raise FileExistsError(f"{out} is finished (summary.json); choose another output folder.")
    out.mkdir(parents=True, exist_ok=True)
    explored = out / "explored.xyz"
    if not explored.is_file():
        starts = starts_by_split(args.dataset, args.boxes, args.seeds)
        if not starts:
            raise ValueError(f"{args.dataset} holds no liquid box (seed box_*) in {SPLITS}.")
        frames = explore(
            args.student,
            starts,
            args.temperatures,
            args.ps,
            args.discard_ps,
            args.interval,
            seed=args.seed,
            compile=not args.eager,
            partial=out / "explored_partial.xyz",
            kind=args.kind,
        )
        atomic_write_bytes(explored, _frames_bytes(frames))
        (out / "explored_partial.xyz").unlink(missing_ok=True)
    frames = read(explored, index=":", format="extxyz")
    labelled = label(args.teacher, frames, out / "labelled.xyz")
    summary = write_dataset(out, labelled, args)
    print(f"on-policy water: {len(labelled)} frames {summary['splits']} -> {out}/dataset.xyz")
    return summary


def write_dataset(
    out: Path, labelled: list[Atoms], args: argparse.Namespace, **extra: Any
) -> dict[str, Any]:
    """``out/dataset.xyz`` and ``out/summary.json`` (the last file: it marks the folder finished).

    The summary has what ``training.combine`` and ``ase-distill train`` read; ``extra`` adds
    entries before the teacher and the command's arguments.
    """
    from training.teachers import make_teacher

    atomic_write_bytes(out / "dataset.xyz", _frames_bytes(labelled))
    summary = {
        "complete": True,
        "frames": len(labelled),
        "splits": dict(Counter(f.info["split"] for f in labelled)),
        **extra,
        "molecules": sorted({str(f.info["seed"]) for f in labelled}),
        "holdout_molecules": [],
        "elements": sorted({int(z) for f in labelled for z in f.numbers}),
        "teacher": make_teacher(args.teacher).metadata(),
        "config": dict(vars(args)),
    }
    atomic_write_json(out / "summary.json", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    """CLI (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("student", help="student name or checkpoint that explores")
    p.add_argument("dataset", help="the dataset whose boxes start the runs")
    p.add_argument("output", help="folder for explored, labelled and dataset .xyz, summary.json")
    p.add_argument("--teacher", default="sevennet-0")
    p.add_argument("--temperatures", type=float, nargs="+", default=[270.0, 300.0, 330.0, 360.0])
    p.add_argument("--ps", type=float, default=2.0, help="length of each run")
    p.add_argument("--discard-ps", type=float, default=0.5, help="equilibration not sampled")
    p.add_argument("--interval", type=int, default=250, help="steps (0.5 fs) between frames")
    p.add_argument("--boxes", type=int, default=0, help="at most this many boxes (0: all)")
    p.add_argument("--seeds", nargs="+", help="only these boxes (box_NN), in this order")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kind", default="onpolicy", help="frame info 'kind' (a round's name)")
    p.add_argument("--eager", action="store_true", help="no compiled package (slower; tests)")
    args = p.parse_args(argv)
    if args.ps <= args.discard_ps or args.interval < 1:
        raise ValueError("--ps must exceed --discard-ps, and --interval must be >= 1.")
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
