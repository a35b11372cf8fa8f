"""Run NVE / NVT trajectories with any ASE calculator, recording energies and stability."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
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
) -> MDResult:
    """Integrate from ``start`` (positions and momenta used as given).

    The trajectory file is written as the run goes, so a crash keeps what was written. A NaN,
    an exploding energy or a Fu et al. stability failure stops the run and is recorded; an
    exception from the calculator is recorded in ``aborted`` (the caller decides to raise).
    """
    settings.check()
    atoms = start.copy()
    atoms.calc = calc
    n = len(atoms)
    res = MDResult(label=label, settings=settings, n_atoms=n)
    monitor = StabilityMonitor(start)
    dyn = make_dynamics(atoms, settings)
    traj = None
    if trajectory is not None:
        res.trajectory = str(trajectory)
        traj = Trajectory(str(trajectory), "w", atoms)

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

    bar = tqdm(total=settings.steps, desc=label, disable=not progress, leave=False)
    t0 = time.perf_counter()
    try:
        record()
        while res.steps_done < settings.steps:
            k = min(settings.interval, settings.steps - res.steps_done)
            dyn.run(k)
            res.steps_done += k
            bar.update(k)
            reason = record()
            drift = (res.etot[-1] - res.etot[0]) / n * 1000
            bar.set_postfix(T=f"{res.temperature[-1]:.0f}K", dE=f"{drift:+.2f}meV/at")
            if reason is not None:
                res.failure = reason
                res.failure_time_ps = res.time_ps[-1]
                break
    except Exception as exc:  # the calculator raised mid-run
        res.aborted = f"{type(exc).__name__}: {exc}"
    finally:
        res.seconds = time.perf_counter() - t0
        bar.close()
        if traj is not None:
            traj.close()
    return res


class TeacherRunStore:
    """Finished teacher trajectories on disk, reused by every later validation.

    A teacher's run depends only on the start (positions, momenta, cell), the MD settings and
    the teacher, so a key hashes exactly those; a run is stored as ``KEY.json`` (time series and
    outcome) beside its trajectory ``KEY.traj``. Teacher time is the cost of a validation
    (SevenNet-0: ~1.5 s per step on 96 atoms), so a run computed once, even by another command
    (``ase-distill validate --teacher-only``), is never computed again.
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
            h.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        h.update(json.dumps([asdict(settings), teacher, start.pbc.tolist()]).encode())
        return h.hexdigest()[:20]

    def load(self, key: str) -> MDResult | None:
        """The stored run, or ``None``."""
        meta_path, traj_path = self.folder / f"{key}.json", self.folder / f"{key}.traj"
        if not (meta_path.is_file() and traj_path.is_file()):
            return None
        from ase.io import read

        meta = json.loads(meta_path.read_text())
        meta["settings"] = MDSettings(**meta["settings"])
        res = MDResult(**meta)
        res.frames = read(traj_path, ":")
        res.trajectory = str(traj_path)
        return res

    def save(self, key: str, res: MDResult) -> None:
        """Store a finished run (its trajectory file is copied next to the record)."""
        import shutil
        from dataclasses import asdict, fields

        from ase_distill.checkpoint import atomic_write_json

        self.folder.mkdir(parents=True, exist_ok=True)
        if res.trajectory and Path(res.trajectory).resolve() != (self.folder / f"{key}.traj"):
            shutil.copyfile(res.trajectory, self.folder / f"{key}.traj")
        meta = {
            f.name: getattr(res, f.name)
            for f in fields(res)
            if f.name not in ("frames", "trajectory", "settings")
        }
        meta["settings"] = asdict(res.settings)
        atomic_write_json(self.folder / f"{key}.json", meta)
