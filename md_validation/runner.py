"""Run NVE / NVT trajectories with any ASE calculator, recording energies and stability."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.io.trajectory import Trajectory
from tqdm.auto import tqdm

from ase_distill.md import ENSEMBLES, MDSettings, initial_velocities, make_dynamics
from md_validation.metrics import StabilityMonitor

__all__ = ["ENSEMBLES", "MDResult", "MDSettings", "TeacherRunStore", "initial_velocities", "run_md"]


@dataclass
class MDResult:
    """Time series and outcome of one trajectory."""

    label: str
    settings: MDSettings
    n_atoms: int
    time_ps: list[float] = field(default_factory=list)
    epot: list[float] = field(default_factory=list)
    ekin: list[float] = field(default_factory=list)
    temperature: list[float] = field(default_factory=list)
    frames: list[Atoms] = field(default_factory=list)
    steps_done: int = 0
    seconds: float = 0.0
    failure: str | None = None
    failure_time_ps: float | None = None
    aborted: str | None = None
    trajectory: str | None = None

    @property
    def etot(self) -> np.ndarray:
        """Total energy series (eV)."""
        return np.asarray(self.epot) + np.asarray(self.ekin)

    @property
    def steps_per_second(self) -> float:
        """Integration speed including force evaluation."""
        return self.steps_done / self.seconds if self.seconds > 0 else float("nan")


def run_md(
    start: Atoms,
    calc: Calculator,
    settings: MDSettings,
    label: str,
    trajectory: str | Path | None = None,
    progress: bool = True,
    previous: MDResult | None = None,
    checkpoint: Callable[[MDResult], None] | None = None,
    checkpoint_every_s: float = 300.0,
    time_budget_s: float | None = None,
) -> MDResult:
    """Integrate from ``start`` (positions and momenta used as given), or continue ``previous``.

    The trajectory file is written as the run goes, so a crash keeps what was written. A NaN,
    an exploding energy or a Fu et al. stability failure stops the run and is recorded; an
    exception from the calculator is recorded in ``aborted`` (the caller decides to raise).

    Args:
        start: the first frame (also the stability monitor's reference when continuing).
        calc: the calculator.
        settings: the run; ``settings.steps`` is the total length, ``previous`` included.
        label: name in the progress bar and the result.
        trajectory: file written as the run goes (``previous``'s frames first).
        progress: show a progress bar.
        previous: a shorter run of the same ``start`` and settings to continue from its last
            frame (its last recorded step). Stochastic thermostats then draw from a generator
            seeded by ``(seed + 1, steps done)``: a run continued in pieces is a valid
            trajectory of the same ensemble, not the same numbers as one run in one piece.
        checkpoint: called with the run so far every ``checkpoint_every_s`` seconds and at
            the end, so that a killed run can be continued (``TeacherRunStore``).
        checkpoint_every_s: seconds between checkpoints.
        time_budget_s: stop at the first record after this many seconds of this call, short of
            ``settings.steps`` (``steps_done`` says how far it got; ``previous`` continues it):
            a lent GPU's fixed minutes go to MD instead of to a guess of how many steps fit.
    """
    settings.check()
    res, atoms, rng = _start_or_continue(start, settings, label, previous)
    atoms.calc = calc
    monitor = StabilityMonitor(start)
    dyn = make_dynamics(atoms, settings, rng)
    traj = None
    if trajectory is not None:
        res.trajectory = str(trajectory)
        traj = Trajectory(str(trajectory), "w", atoms)
        for frame in res.frames:
            traj.write(frame)

    def record() -> str | None:
        epot = atoms.get_potential_energy()
        ekin = atoms.get_kinetic_energy()
        res.time_ps.append(res.steps_done * settings.timestep_fs / 1000.0)
        res.epot.append(float(epot))
        res.ekin.append(float(ekin))
        res.temperature.append(float(atoms.get_temperature()))
        frame = atoms.copy()
        frame.calc = None
        res.frames.append(frame)
        if traj is not None:
            traj.write(atoms)
        return monitor.check(atoms, epot + ekin)

    bar = tqdm(total=settings.steps, initial=res.steps_done, desc=label, disable=not progress,
               leave=False)  # fmt: skip
    t0 = time.perf_counter()
    seconds_before = res.seconds
    last_checkpoint = t0
    try:
        if previous is None:
            record()
        else:  # the stability reference energy is the start's, as in one uninterrupted run
            monitor.e0 = res.epot[0] + res.ekin[0]
        while res.steps_done < settings.steps:
            if time_budget_s is not None and time.perf_counter() - t0 > time_budget_s:
                break
            k = min(settings.interval, settings.steps - res.steps_done)
            dyn.run(k)
            res.steps_done += k
            bar.update(k)
            reason = record()
            drift = (res.etot[-1] - res.etot[0]) / len(atoms) * 1000
            bar.set_postfix(T=f"{res.temperature[-1]:.0f}K", dE=f"{drift:+.2f}meV/at")
            if reason is not None:
                res.failure = reason
                res.failure_time_ps = res.time_ps[-1]
                break
            if (
                checkpoint is not None
                and time.perf_counter() - last_checkpoint > checkpoint_every_s
            ):
                res.seconds = seconds_before + time.perf_counter() - t0
                checkpoint(res)
                last_checkpoint = time.perf_counter()
    except Exception as exc:  # the calculator raised mid-run
        res.aborted = f"{type(exc).__name__}: {exc}"
    finally:
        res.seconds = seconds_before + time.perf_counter() - t0
        bar.close()
        if traj is not None:
            traj.close()
    if checkpoint is not None and not res.aborted:
        checkpoint(res)
    return res


def _start_or_continue(
    start: Atoms, settings: MDSettings, label: str, previous: MDResult | None
) -> tuple[MDResult, Atoms, np.random.Generator | None]:
    """The result to fill, the atoms to integrate and the thermostat's generator."""
    if previous is None:
        return MDResult(label=label, settings=settings, n_atoms=len(start)), start.copy(), None
    if previous.failure or previous.aborted:
        reason = previous.failure or previous.aborted
        raise ValueError(
            f"The stored run {previous.label!r} ended early ({reason}); it cannot be continued. "
            "Delete it from the teacher-run folder to run it again."
        )
    res = _with_series(previous, len(previous.frames))
    res.settings = settings
    res.label = label
    atoms = previous.frames[-1].copy()
    rng = np.random.default_rng([settings.seed + 1, previous.steps_done])
    return res, atoms, rng


def _with_series(res: MDResult, n: int) -> MDResult:
    """A shallow copy of ``res`` with fresh lists of its first ``n`` records (``res`` unchanged)."""
    out = copy.copy(res)
    for name in ("time_ps", "epot", "ekin", "temperature", "frames"):
        setattr(out, name, list(getattr(res, name))[:n])
    return out


def truncated(res: MDResult, steps: int) -> MDResult:
    """The first ``steps`` steps of ``res`` (a longer stored run serving a shorter request)."""
    if steps >= res.steps_done:
        return res
    n = sum(1 for t in res.time_ps if t <= steps * res.settings.timestep_fs / 1000.0 + 1e-12)
    out = _with_series(res, n)
    out.steps_done = steps
    out.settings = replace(res.settings, steps=steps)
    out.seconds = res.seconds * steps / res.steps_done
    out.failure = out.failure_time_ps = None  # a failure after ``steps`` is not in the prefix
    return out


KEY_DECIMALS = 9  # start arrays (A, amu A/fs-scale momenta, cell) rounded before hashing


class TeacherRunStore:
    """Teacher trajectories on disk, reused, continued and resumed by every later validation.

    A teacher's run depends only on the start (positions, momenta, cell), the MD settings and
    the teacher, so a key hashes exactly those; a run is stored as ``KEY.json`` (time series and
    outcome) beside its trajectory ``KEY.traj``. Teacher time is the cost of a validation
    (SevenNet-0: ~1.5 s per step on 96 atoms on one core, 52 ms on an H200), so a run computed
    once, even by another command (``ase-distill validate --teacher-only``), is not computed
    again. Runs that differ only in length form a *lineage* (:meth:`lineage`): the longest
    stored run of a lineage serves any shorter request (its first steps, :func:`truncated`) and
    is continued for a longer one (:func:`run_md` with ``previous``). A run being computed is
    saved every few minutes, so a killed run resumes where it stopped, on any machine. Runs of
    one lineage computed separately (another machine, another length) are different
    trajectories and all stay; the run a longer one continued is its prefix and is removed.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @staticmethod
    def key(start: Atoms, settings: MDSettings, teacher: str) -> str:
        """Hash of what determines the run."""
        import hashlib
        from dataclasses import asdict

        h = hashlib.sha256()
        for array in (start.numbers, start.positions, start.get_momenta(), start.cell[:]):
            # rounded: the same seeded start drawn with another numpy or ASE build differs in the
            # last bit (seen: 4e-16 in the momenta), which must not orphan hours of teacher MD;
            # + 0.0 turns -0.0 into 0.0
            rounded = np.round(np.asarray(array, dtype=np.float64), KEY_DECIMALS) + 0.0
            h.update(np.ascontiguousarray(rounded).tobytes())
        h.update(json.dumps([asdict(settings), teacher, start.pbc.tolist()]).encode())
        return h.hexdigest()[:20]

    @classmethod
    def lineage(cls, start: Atoms, settings: MDSettings, teacher: str) -> str:
        """Key of the run without its length: runs that extend one another share it."""
        return cls.key(start, replace(settings, steps=0), teacher)

    def load(self, key: str) -> MDResult | None:
        """The stored run, or ``None``."""
        meta_path, traj_path = self.folder / f"{key}.json", self.folder / f"{key}.traj"
        if not (meta_path.is_file() and traj_path.is_file()):
            return None
        from ase.io import read

        meta = json.loads(meta_path.read_text())
        for extra in ("lineage", "teacher"):
            meta.pop(extra, None)
        meta["settings"] = MDSettings(**meta["settings"])
        res = MDResult(**meta)
        res.frames = read(traj_path, ":")
        res.trajectory = str(traj_path)
        return res

    def longest(self, start: Atoms, settings: MDSettings, teacher: str) -> MDResult | None:
        """The longest stored run of this lineage (finished or not), or ``None``."""
        wanted = self.lineage(start, settings, teacher)
        found = [(steps, key) for key, line, steps in self._records() if line == wanted]
        return self.load(max(found)[1]) if found else None

    def _records(self) -> list[tuple[str, str, int]]:
        """``(key, lineage, steps done)`` of every stored run."""
        records = []
        for meta_path in sorted(self.folder.glob("*.json")):
            traj_path = meta_path.with_suffix(".traj")
            if not traj_path.is_file():
                continue
            meta = json.loads(meta_path.read_text())
            # recomputed from the first frame, not read from the record: records written before
            # the key was rounded (KEY_DECIMALS) carry lineages of the exact bits
            records.append((meta_path.stem, _lineage_of(meta, traj_path), int(meta["steps_done"])))
        return records

    def save(self, key: str, res: MDResult, lineage: str, teacher: str) -> None:
        """Store a run, finished or not (trajectory and record each written atomically)."""
        from dataclasses import asdict, fields

        from ase_distill.checkpoint import atomic_write_json

        self.folder.mkdir(parents=True, exist_ok=True)
        write_frames(self.folder / f"{key}.traj", res.frames)
        meta = {
            f.name: getattr(res, f.name)
            for f in fields(res)
            if f.name not in ("frames", "trajectory", "settings")
        }
        meta["settings"] = asdict(res.settings)
        meta["lineage"], meta["teacher"] = lineage, teacher
        atomic_write_json(self.folder / f"{key}.json", meta)

    def remove(self, key: str) -> None:
        """Delete a stored run (one that a longer run has continued and therefore holds)."""
        for suffix in (".json", ".traj"):
            (self.folder / f"{key}{suffix}").unlink(missing_ok=True)


def _lineage_of(meta: dict, traj_path: Path) -> str:
    """Lineage of a stored run, from its first frame, settings and teacher."""
    from ase.io import read

    # records before lineages were stored name no teacher; their labels are "TEACHER ENSEMBLE"
    teacher = meta.get("teacher") or meta["label"].rsplit(" ", 1)[0]
    return TeacherRunStore.lineage(read(traj_path, 0), MDSettings(**meta["settings"]), teacher)


def write_frames(path: Path, frames: list[Atoms]) -> None:
    """Write ``frames`` (positions, momenta, cell) to ``path`` atomically."""
    tmp = path.with_name(path.name + ".tmp")
    with Trajectory(str(tmp), "w") as traj:
        for frame in frames:
            traj.write(frame)
    tmp.replace(path)
