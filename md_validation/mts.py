"""Teacher dynamics at a fraction of the teacher's cost: multiple time stepping with a student.

A reference trajectory of a slow teacher (SevenNet-0: ~1.5 s per step on 96 atoms on one
core) costs hours per picosecond. Reversible multiple time stepping (r-RESPA; Tuckerman,
Berne and Martyna, J. Chem. Phys. 97, 1990 (1992)) splits the force into a fast part, here a
distilled student, integrated every step, and a slow correction, ``teacher - student``, applied
as an impulse every ``k`` steps. The dynamics then follows the teacher's potential energy
surface: the student only sets how the motion between two teacher calls is interpolated, and
the thermostat samples the teacher's canonical distribution up to the splitting error in the
outer step. Kapil et al. (J. Chem. Phys. 144, 054111 (2016)) ran liquid water this way with an
outer step of 2 fs; with the usual inner step of 0.5 fs that is ``k = 4``, a 4x cheaper
teacher run. Much longer outer steps meet the O-H stretch (period ~9 fs) resonance.

:class:`ImpulseMTS` is an ASE calculator, so every velocity-Verlet-type integrator (ASE's
VelocityVerlet, Langevin, Bussi) becomes r-RESPA without change: each step uses the force of
one evaluation for two half kicks (the end of one step and the start of the next), so the
scaled correction ``k * (F_teacher - F_student)`` at every ``k``-th evaluation gives exactly the
outer impulse ``k * dt * (F_teacher - F_student)`` of r-RESPA at that time.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

__all__ = ["ImpulseMTS", "MTSError", "mts_teacher_label"]

LONGEST_STABLE_OUTER_FS = 3.0  # about a third of the O-H stretch period: resonance beyond


class MTSError(ValueError):
    """Multiple time stepping was set up wrongly (the message says how to fix it)."""


def mts_teacher_label(teacher: str, student: str, k: int) -> str:
    """Name of a teacher run made with :class:`ImpulseMTS` (stored runs keep it apart)."""
    return f"{teacher}+mts{k}({student})"


def check_outer_step(k: int, timestep_fs: float) -> None:
    """Refuse an outer step that cannot be integrated stably.

    Raises:
        MTSError: for ``k < 1`` or an outer step over :data:`LONGEST_STABLE_OUTER_FS`.
    """
    if k < 1:
        raise MTSError(f"The number of inner steps per teacher call must be >= 1, got {k}.")
    if k * timestep_fs > LONGEST_STABLE_OUTER_FS + 1e-9:
        raise MTSError(
            f"An outer step of {k} x {timestep_fs} fs = {k * timestep_fs} fs meets the O-H "
            f"stretch resonance; keep k x timestep <= {LONGEST_STABLE_OUTER_FS} fs "
            "(k = 4 with 0.5 fs)."
        )


class ImpulseMTS(Calculator):
    """r-RESPA forces: the fast calculator every step, the slow correction every ``k``-th step.

    Evaluation ``n`` (counted from 0, one per MD step) returns ``F_fast`` and, when
    ``n % k == 0``, ``F_fast + k * (F_slow - F_fast)``. The energy is the slow calculator's at
    those evaluations and ``E_fast`` plus the last slow-minus-fast offset between them (a
    record, not a conserved quantity). ``k = 1`` is plain dynamics on the slow calculator.

    Args:
        fast: the cheap calculator (a student).
        slow: the expensive calculator whose dynamics is wanted (the teacher).
        k: inner steps per slow evaluation.
    """

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, fast: Calculator, slow: Calculator, k: int) -> None:
        if k < 1:
            raise MTSError(f"k (inner steps per slow evaluation) must be >= 1, got {k}.")
        super().__init__()
        self.fast, self.slow, self.k = fast, slow, k
        self.evaluations = 0
        self.slow_evaluations = 0
        self._offset = 0.0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        """Fast forces every evaluation, the scaled slow correction every ``k``-th."""
        super().calculate(atoms, properties, system_changes)
        e_fast, f_fast = _energy_forces(self.fast, self.atoms)
        forces = f_fast
        if self.evaluations % self.k == 0:
            e_slow, f_slow = _energy_forces(self.slow, self.atoms)
            self._offset = e_slow - e_fast
            forces = f_fast + self.k * (f_slow - f_fast)
            self.slow_evaluations += 1
        self.evaluations += 1
        energy = e_fast + self._offset
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}


def _energy_forces(calc: Calculator, atoms: Atoms) -> tuple[float, np.ndarray]:
    """Energy and forces of ``calc`` on a copy of ``atoms`` (``atoms`` keeps its calculator)."""
    frame = atoms.copy()
    frame.calc = calc
    return float(frame.get_potential_energy()), np.array(frame.get_forces())
