"""MD settings and the one thermostat factory, shared by data generation and validation.

:class:`MDSettings` describes one trajectory; :func:`make_dynamics` turns it into an ASE
integrator; :func:`initial_velocities` gives seeded Maxwell-Boltzmann momenta. The teacher-driven
data generation (``training.generate``) and the student-vs-teacher validation
(``md_validation``) both use them, so "Langevin at 600 K" means the same thing in both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms, units
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
from ase.md.verlet import VelocityVerlet

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
        seed: seed of the thermostat's random numbers (when no generator is passed).
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
        if self.friction_per_fs < 0 or self.taut_fs <= 0:
            raise ValueError("friction must be >= 0 and the thermostat time constant > 0.")


def initial_velocities(
    atoms: Atoms, temperature_K: float, rng: np.random.Generator | int = 0
) -> Atoms:
    """A copy of ``atoms`` with seeded Maxwell-Boltzmann momenta (no net momentum / rotation)."""
    atoms = atoms.copy()
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)
    Stationary(atoms)
    if not atoms.pbc.any():
        ZeroRotation(atoms)
    return atoms


def make_dynamics(atoms: Atoms, s: MDSettings, rng: np.random.Generator | None = None):
    """The ASE integrator of ``s`` acting on ``atoms`` (which carries its calculator).

    Args:
        atoms: the system, positions and momenta as they are.
        s: the settings (checked).
        rng: random numbers for stochastic thermostats; default ``default_rng(s.seed + 1)``.
    """
    s.check()
    dt = s.timestep_fs * units.fs
    rng = np.random.default_rng(s.seed + 1) if rng is None else rng
    if s.ensemble == "nve":
        return VelocityVerlet(atoms, dt)
    if s.ensemble == "langevin":
        from ase.md.langevin import Langevin

        friction = s.friction_per_fs / units.fs
        return Langevin(
            atoms, dt, temperature_K=s.temperature_K, friction=friction, fixcm=False, rng=rng
        )
    if s.ensemble == "bussi":
        from ase.md.bussi import Bussi

        return Bussi(atoms, dt, temperature_K=s.temperature_K, taut=s.taut_fs * units.fs, rng=rng)
    from ase.md.nose_hoover_chain import NoseHooverChainNVT

    return NoseHooverChainNVT(atoms, dt, temperature_K=s.temperature_K, tdamp=s.taut_fs * units.fs)
