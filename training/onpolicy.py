"""On-policy distillation: label where the students go and where they disagree.

A student trained on teacher-chosen frames drifts, in its own MD, into regions those frames never
covered. Each round below sends the teacher exactly there:

1. ``train``: each member of a committee (``committee`` students of one size, different seeds)
   trains ``epochs`` more epochs on the current dataset. It starts from its own checkpoint of
   the previous round (``train.init_from``).
2. ``evaluate``: member 0's held-out fidelity (split ``test_molecule``, else ``test``). Its MD
   stability: short NVT runs from held-out structures. Both are written to
   ``rounds.json`` and ``rounds.png``.
3. ``explore``: member 0 runs short Langevin MD from training structures at random temperatures
   in ``temperatures``. A frame is kept every ``interval`` steps.
4. ``select``: the ``select`` frames on which the committee's force spread is largest, plus a
   ``random_fraction`` of random frames (so that the easy regions stay represented).
5. ``label``: the teacher labels them. They join the dataset as training frames, and every
   earlier frame stays in it (the replay buffer).

The rounds stop after ``rounds``, or when the held-out force RMSE has not improved for
``patience`` rounds. ``OUTPUT/state.json`` records the finished phases, so a kill at any point
resumes at the phase it stopped in. A training phase resumes from its own ``last.pt``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.io import read, write

from ase_distill.checkpoint import atomic_write_json
from training.config import TrainConfig
from training.generate import ENERGY_KEY, FORCES_KEY, STRESS_KEY, read_dataset

PHASES = ("train", "evaluate", "explore", "select", "label")


@dataclass
class OnPolicySettings:
    """One on-policy distillation (see the module docstring)."""

    dataset: str
    teacher: str
    output: str
    size: str = "ultra-tiny"
    architecture: dict[str, Any] = field(default_factory=dict)
    committee: int = 3
    rounds: int = 5
    epochs: int = 20
    batch_size: int = 16
    threads: int = 0
    md_runs: int = 8
    md_steps: int = 200
    interval: int = 10
    temperatures: tuple[float, float] = (300.0, 1000.0)
    timestep_fs: float = 0.5
    select: int = 40
    random_fraction: float = 0.25
    patience: int = 2
    seed: int = 0
    # round 0's members start from this student (name or checkpoint) instead of from scratch
    init_from: str = ""
    # TrainConfig fields for every member's training (e.g. max_steps_per_epoch, lr, max_force)
    train: dict[str, Any] = field(default_factory=dict)
    # extxyz of start structures the dataset never held (new chemistry); half the exploration
    # runs start from them, the other half from training structures
    new_seeds: str = ""

    def check(self) -> None:
        """Refuse settings no run can use, naming the setting."""
        positive = ("committee", "rounds", "epochs", "md_runs", "md_steps", "interval", "select")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.committee < 2:
            raise ValueError("committee must be >= 2: disagreement needs two students.")
        if not 0 <= self.random_fraction < 1:
            raise ValueError(f"random_fraction must be in [0, 1), got {self.random_fraction}.")
        lo, hi = self.temperatures
        if not 0 < lo <= hi or not self.timestep_fs > 0:
            raise ValueError("temperatures must satisfy 0 < low <= high; timestep_fs > 0.")
        if not Path(self.dataset).is_file():
            raise ValueError(f"Dataset {self.dataset} not found; run `ase-distill generate`.")
        if self.new_seeds and not Path(self.new_seeds).is_file():
            raise ValueError(f"new_seeds file {self.new_seeds} not found (an extxyz of starts).")
        fixed = {"dataset", "output", "size", "architecture", "epochs", "seed", "init_from"}
        known = set(TrainConfig.__dataclass_fields__) - fixed
        unknown = sorted(set(self.train) - known)
        if unknown:
            raise ValueError(
                f"train settings {unknown} are not TrainConfig fields one may set here; "
                f"choose from {', '.join(sorted(known))}."
            )


class OnPolicyRun:
    """The rounds of one output folder; :meth:`run` resumes where ``state.json`` stopped."""

    def __init__(self, settings: OnPolicySettings, progress: bool = True) -> None:
        settings.check()
        self.s, self.progress = settings, progress
        self.out = Path(settings.output)
        self.out.mkdir(parents=True, exist_ok=True)
        state_path = self.out / "state.json"
        self.state = (
            json.loads(state_path.read_text())
            if state_path.is_file()
            else {"round": 0, "done": [], "history": [], "settings": asdict(settings)}
        )

    def round_dir(self, k: int | None = None) -> Path:
        """Folder of round ``k`` (the current one by default)."""
        return self.out / f"round_{self.state['round'] if k is None else k:02d}"

    def member_checkpoint(self, member: int, k: int | None = None) -> Path:
        """Best checkpoint of a committee member after round ``k``."""
        return self.round_dir(k) / f"member_{member}" / "best.pt"

    def _save(self) -> None:
        atomic_write_json(self.out / "state.json", self.state)

    def run(self) -> dict[str, Any]:
        """All remaining rounds; returns the state (history: one row per round)."""
        while self.state["round"] < self.s.rounds and not self.state.get("stopped"):
            for phase in PHASES:
                if phase not in self.state["done"]:
                    getattr(self, f"_{phase}")()
                    self.state["done"].append(phase)
                    self._save()
            if self._converged():
                self.state["stopped"] = "held-out force RMSE stopped improving"
            self.state["round"] += 1
            self.state["done"] = []
            self._save()
        best = min(self.state["history"], key=lambda r: r["force_rmse"], default=None)
        print(
            f"on-policy: {len(self.state['history'])} rounds; best held-out force RMSE "
            f"{best['force_rmse']:.4f} eV/A in round {best['round']}"
            if best
            else "on-policy: no round finished"
        )
        return self.state

    def _dataset(self) -> Path:
        """This round's dataset: the base one in round 0, then last round's plus its labels."""
        k = self.state["round"]
        path = self.round_dir() / "dataset.xyz"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            if k == 0:
                shutil.copyfile(self.s.dataset, path)
            else:
                frames = read_dataset(self.round_dir(k - 1) / "dataset.xyz")
                labelled = self.round_dir(k - 1) / "labelled.xyz"
                if labelled.is_file() and labelled.stat().st_size:
                    frames += read(labelled, index=":", format="extxyz")
                write(path, frames, format="extxyz")
        return path

    def _train(self) -> None:
        from training.train import train

        k, dataset = self.state["round"], self._dataset()
        for m in range(self.s.committee):
            out = self.round_dir() / f"member_{m}"
            config = TrainConfig(
                dataset=str(dataset),
                output=str(out),
                size=self.s.size,
                architecture=dict(self.s.architecture),
                epochs=self.s.epochs,
                batch_size=self.s.batch_size,
                threads=self.s.threads,
                seed=self.s.seed * 1000 + m,
                init_from=str(self.member_checkpoint(m, k - 1)) if k > 0 else self.s.init_from,
                **{"patience": max(self.s.epochs, 1), **self.s.train},
            )
            train(config, resume=(out / "last.pt").is_file(), progress=self.progress)

    def _evaluate(self) -> None:
        from ase_distill.registry import resolve_student
        from training.heldout import heldout_md
        from training.train import evaluate_samples, prepare

        frames = read_dataset(self.round_dir() / "dataset.xyz")
        held = heldout_md(frames)  # teacher MD of held-out molecules, else any unseen split
        held = held or [f for f in frames if f.info.get("split") == "test_molecule"]
        held = held or [f for f in frames if f.info.get("split") in ("test", "validation")]
        model, _ = resolve_student(self.member_checkpoint(0))
        metrics = evaluate_samples(model, prepare(held, model.cutoff, model.species))
        starts = _one_per_seed(held)
        _, stable = md_frames(self.member_checkpoint(0), starts, self.s, seed=self.state["round"])
        row = {
            "round": self.state["round"],
            "frames": len(frames),
            "heldout_frames": len(held),
            "force_rmse": float(metrics["force_rmse"]),
            "force_r2": float(metrics["force_r2"]),
            "force_angle_deg": float(metrics.get("force_angle_deg", np.nan)),
            "energy_mae_mev_per_atom": float(metrics.get("energy_mae_mev_per_atom", np.nan)),
            "heldout_md_stable_fraction": float(np.mean(stable)) if stable else None,
        }
        self.state["history"].append(row)
        atomic_write_json(self.out / "rounds.json", self.state["history"])
        _plot_rounds(self.state["history"], self.out / "rounds.png")

    def _explore(self) -> None:
        frames = read_dataset(self.round_dir() / "dataset.xyz")
        pool = _one_per_seed([f for f in frames if f.info.get("split") == "train"])
        rng = np.random.default_rng(self.s.seed + 7919 * self.state["round"])
        starts = [pool[i] for i in rng.integers(len(pool), size=self.s.md_runs)]
        if self.s.new_seeds:
            new = read(self.s.new_seeds, index=":", format="extxyz")
            half = self.s.md_runs // 2
            starts = starts[:half] + [
                new[i] for i in rng.integers(len(new), size=len(starts) - half)
            ]
        md_seed = int(rng.integers(2**31))
        visited, _ = md_frames(self.member_checkpoint(0), starts, self.s, seed=md_seed)
        write(self.round_dir() / "explored.xyz", visited, format="extxyz")

    def _select(self) -> None:
        from ase_distill.committee import CommitteeCalculator

        frames = read(self.round_dir() / "explored.xyz", index=":", format="extxyz")
        members = [str(self.member_checkpoint(m)) for m in range(self.s.committee)]
        committee = CommitteeCalculator(members, warn_force_uncertainty=None)
        scores = []
        for frame in frames:
            committee.calculate(frame, ["energy", "forces"])
            scores.append(float(committee.results["forces_uncertainty"].max()))
        chosen = choose_frames(np.array(scores), self.s.select, self.s.random_fraction, self.s.seed)
        picked = []
        for i in chosen:
            frame = frames[i]
            frame.info["committee_force_spread"] = scores[i]
            picked.append(frame)
        write(self.round_dir() / "selected.xyz", picked, format="extxyz")

    def _label(self) -> None:
        from training.teachers import make_teacher

        teacher = make_teacher(self.s.teacher)
        selected = read(self.round_dir() / "selected.xyz", index=":", format="extxyz")
        labelled = []
        for frame in selected:
            try:
                result = teacher.label(frame)
            except Exception:  # noqa: BLE001 (a teacher failure drops the frame, as generate does)
                continue
            out = Atoms(frame.numbers, frame.positions, cell=frame.cell, pbc=frame.pbc)
            out.info.update(
                {
                    ENERGY_KEY: result.info["energy"],
                    "split": "train",
                    "seed": frame.info.get("seed", "on-policy"),
                    "round": self.state["round"],
                    "committee_force_spread": frame.info.get("committee_force_spread"),
                }
            )
            out.arrays[FORCES_KEY] = result.arrays["forces"]
            if "stress" in result.info:
                out.info[STRESS_KEY] = result.info["stress"]
            labelled.append(out)
        write(self.round_dir() / "labelled.xyz", labelled, format="extxyz")

    def _converged(self) -> bool:
        rmse = [r["force_rmse"] for r in self.state["history"]]
        if len(rmse) <= self.s.patience:
            return False
        return min(rmse[-self.s.patience :]) >= min(rmse[: -self.s.patience])


def choose_frames(scores: np.ndarray, n: int, random_fraction: float, seed: int) -> list[int]:
    """Indices of the ``n`` highest scores, ``random_fraction`` of them replaced by random ones."""
    n = min(n, len(scores))
    n_random = int(round(random_fraction * n))
    order = [int(i) for i in np.argsort(-scores, kind="stable")]
    top = order[: n - n_random]
    rest = order[n - n_random :]
    rng = np.random.default_rng(seed)
    extra = [int(i) for i in rng.choice(rest, size=min(n_random, len(rest)), replace=False)]
    return top + extra


def _one_per_seed(frames: list[Atoms]) -> list[Atoms]:
    seen: dict[str, Atoms] = {}
    for f in frames:
        seen.setdefault(str(f.info.get("seed", len(seen))), f)
    return list(seen.values())


def md_frames(
    checkpoint: Path, starts: list[Atoms], s: OnPolicySettings, seed: int
) -> tuple[list[Atoms], list[bool]]:
    """Langevin MD of the student from each start; frames every ``interval`` steps.

    Returns:
        The frames of all runs, and per run whether it stayed stable. A run is stable when the
        calculator never refused a geometry (atoms too close, non-finite values) and no force
        exceeded 50 eV/A.
    """
    from ase_distill.batch import BatchedMD, BatchEvaluator
    from ase_distill.md import initial_velocities

    evaluator = BatchEvaluator(str(checkpoint))
    rng = np.random.default_rng(seed)
    frames, stable = [], []
    for k, start in enumerate(starts):
        temperature = float(rng.uniform(*s.temperatures))
        bare = Atoms(start.numbers, start.positions, cell=start.cell, pbc=start.pbc)
        atoms = initial_velocities(bare, temperature, rng)
        md = BatchedMD(
            [atoms], evaluator, s.timestep_fs, "langevin", temperature, seed=seed * 101 + k
        )
        ok = True
        for step in range(1, s.md_steps + 1):
            try:
                md.step()
            except ValueError:
                ok = False
                break
            if not np.isfinite(md.forces).all() or np.abs(md.forces).max() > 50.0:
                ok = False
                break
            if step % s.interval == 0:
                frame = Atoms(atoms.numbers, md.positions.copy(), cell=atoms.cell, pbc=atoms.pbc)
                frame.info.update(seed=start.info.get("seed", "start"), temperature_K=temperature)
                frames.append(frame)
        stable.append(ok)
    return frames, stable


def _plot_rounds(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [r["round"] for r in history]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(rounds, [r["force_rmse"] for r in history], "o-", label="held-out force RMSE")
    ax.set_xlabel("round")
    ax.set_ylabel("eV/A")
    stable = [r["heldout_md_stable_fraction"] for r in history]
    if any(v is not None for v in stable):
        twin = ax.twinx()
        twin.plot(rounds, [v if v is not None else np.nan for v in stable], "s--", color="C1")
        twin.set_ylabel("held-out MD stable fraction", color="C1")
        twin.set_ylim(-0.05, 1.05)
    ax.set_title("on-policy distillation", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_new_seeds(library: str | Path, first: int, out: str | Path, seed: int = 0) -> int:
    """One ETKDG conformer of each library entry from index ``first`` on, as extxyz starts.

    The entries past a dataset's ``library_size`` were never labelled: exploring them brings
    new chemistry into the on-policy rounds (``new_seeds``). Returns the number written.
    """
    from training.chemistry import conformers
    from training.generate import read_library

    starts = []
    for entry in read_library(library)[first:]:
        atoms = conformers(entry["smiles"], n=1, seed=seed)[0]
        atoms.info["seed"] = entry["name"]
        starts.append(atoms)
    write(out, starts, format="extxyz")
    return len(starts)


def control_report(run_dir: str | Path, control_dir: str | Path, out_dir: str | Path) -> dict:
    """Held-out fidelity per round beside a control without on-policy frames: JSON and a plot.

    The control (``training/make_onpolicy.sh`` with ``CONTROL=1``) trains the same stages from
    the same student on the base data alone, so the difference is what the frames bought.
    """
    from training.heldout import HELDOUT_SPLIT

    rounds = json.loads((Path(run_dir) / "rounds.json").read_text())
    keys = ("force_rmse", "force_r2", "force_angle_deg", "energy_mae_mev_per_atom")
    control = []
    for k in range(len(rounds)):
        summary = Path(control_dir) / f"stage_{k}" / "summary.json"
        if summary.is_file():
            metrics = json.loads(summary.read_text())["metrics"][HELDOUT_SPLIT]
            control.append({"stage": k, **{key: float(metrics[key]) for key in keys}})
    result = {"rounds": rounds, "control": control}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "onpolicy.json", result)
    _plot_control(rounds, control, out / "onpolicy.png")
    return result


def _plot_control(rounds: list[dict], control: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([r["round"] for r in rounds], [r["force_rmse"] for r in rounds], "o-",
            label="on-policy rounds")  # fmt: skip
    ax.plot([c["stage"] for c in control], [c["force_rmse"] for c in control], "s--",
            label="control: same steps, no new frames")  # fmt: skip
    ax.set_xlabel("round (the same training steps in both)")
    ax.set_ylabel("held-out force RMSE (eV/A)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["report"]:  # python -m training.onpolicy report RUN CONTROL OUT
        print(json.dumps(control_report(*sys.argv[2:5])["control"], indent=1))
    else:  # python -m training.onpolicy LIBRARY.json FIRST OUT.xyz
        count = write_new_seeds(sys.argv[1], int(sys.argv[2]), sys.argv[3])
        print(f"{count} new seed structures -> {sys.argv[3]}")
