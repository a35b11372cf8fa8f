"""Run NVE / NVT trajectories with any ASE calculator, recording energies and stability."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.io.trajectory import Trajectory
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
from ase.md.verlet import VelocityVerlet
from tqdm.auto import tqdm

from md_validation.metrics import StabilityMonitor

ENSEMBLES = ("nve", "langevin", "bussi", "nose-hoover")


@dataclass
class MDSettings:
    """One trajectory's settings.

    Attributes:
        ensemble: ``nve`` (velocity Verlet), ``langevin``, ``bussi`` (stochastic velocity
            rescaling) or ``nose-hoover`` (deterministic chain).
        temperature_K: thermostat target (NVT) and initial velocity temperature.
        timestep_fs: integration step.
        steps: number of steps.
        interval: record energies and write a trajectory frame every ``interval`` steps.
        friction_per_fs: Langevin friction.
        taut_fs: Bussi / Nose-Hoover time constant.
    """

    ensemble: str = "nve"
    temperature_K: float = 300.0
    timestep_fs: float = 0.5
    steps: int = 1000
    interval: int = 10
    friction_per_fs: float = 0.01
    taut_fs: float = 100.0
    seed: int = 0

    def check(self) -> None:
        """Raise ``ValueError`` for settings no run can use."""
        if self.ensemble not in ENSEMBLES:
            raise ValueError(f"Unknown ensemble {self.ensemble!r}; choose one of {ENSEMBLES}.")
        if self.steps <= 0:
            raise ValueError(f"steps must be positive, got {self.steps}; ask for a longer run.")
        if self.temperature_K < 0:
            raise ValueError(f"temperature must be >= 0 K, got {self.temperature_K}.")
        if self.timestep_fs <= 0:
            raise ValueError(f"time step must be positive, got {self.timestep_fs} fs.")
        if self.interval <= 0:
            raise ValueError(f"interval must be positive, got {self.interval}.")


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


def initial_velocities(atoms: Atoms, temperature_K: float, seed: int) -> Atoms:
    """A copy of ``atoms`` with seeded Maxwell-Boltzmann momenta (no net momentum / rotation)."""
    atoms = atoms.copy()
    MaxwellBoltzmannDistribution(
        atoms, temperature_K=temperature_K, rng=np.random.default_rng(seed)
    )
    Stationary(atoms)
    if not atoms.pbc.any():
        ZeroRotation(atoms)
    return atoms


def _dynamics(atoms: Atoms, s: MDSettings):
    dt = s.timestep_fs * units.fs
    rng = np.random.default_rng(s.seed + 1)
    if s.ensemble == "nve":
        return VelocityVerlet(atoms, dt)
    if s.ensemble == "langevin":
        from ase.md.langevin import Langevin

        return Langevin(
            atoms,
            dt,
            temperature_K=s.temperature_K,
            friction=s.friction_per_fs / units.fs,
            fixcm=False,
            rng=rng,
        )
    if s.ensemble == "bussi":
        from ase.md.bussi import Bussi

        return Bussi(atoms, dt, temperature_K=s.temperature_K, taut=s.taut_fs * units.fs, rng=rng)
    from ase.md.nose_hoover_chain import NoseHooverChainNVT

    return NoseHooverChainNVT(atoms, dt, temperature_K=s.temperature_K, tdamp=s.taut_fs * units.fs)


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
    dyn = _dynamics(atoms, settings)
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
