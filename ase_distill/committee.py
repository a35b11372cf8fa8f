"""A committee of students: mean energy and forces, and their spread as an uncertainty.

Students that agree on their training domain disagree off it, so the spread of a committee's
predictions flags structures a simulation should not trust (and that on-policy distillation
should send to the teacher). :class:`CommitteeCalculator` runs every member on a structure and
returns the mean as ``energy`` / ``forces`` / ``stress`` and the spread as extra results:

* ``energy_uncertainty``: standard deviation of the members' energies (eV);
* ``forces_uncertainty``: per atom, the norm of the per-component standard deviation (eV/A).

With ``warn_force_uncertainty`` set, a call whose largest per-atom force uncertainty exceeds it
emits an :class:`OutOfDomainWarning` (once per calculator until :meth:`reset_warning`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from ase_distill.calculator import DistilledCalculator
from ase_distill.family import FAMILIES
from ase_distill.model import StudentModel


class OutOfDomainWarning(UserWarning):
    """The committee's members disagree more than the threshold on a structure."""


class CommitteeCalculator(Calculator):
    """Mean and spread of several students (see the module docstring).

    Args:
        members: two or more student names, checkpoint paths or :class:`StudentModel`.
        warn_force_uncertainty: eV/A; warn when an atom's force uncertainty exceeds it
            (``None``: never).
        **calculator_options: passed to every member's :class:`DistilledCalculator`
            (``dtype``, ``device``, ``compile`` ...).
    """

    implemented_properties = [
        "energy",
        "free_energy",
        "forces",
        "stress",
        "energies",
        "energy_uncertainty",
        "forces_uncertainty",
    ]

    def __init__(
        self,
        members: Sequence[str | StudentModel],
        warn_force_uncertainty: float | None = 0.5,
        **calculator_options: Any,
    ) -> None:
        if len(members) < 2:
            raise ValueError(f"A committee needs at least 2 members, got {len(members)}.")
        if warn_force_uncertainty is not None and not warn_force_uncertainty > 0:
            raise ValueError(f"warn_force_uncertainty must be > 0, got {warn_force_uncertainty}.")
        super().__init__()
        self.members = [DistilledCalculator(m, **calculator_options) for m in members]
        species = {tuple(sorted(m.species)) for m in self.members}
        if len(species) != 1:
            raise ValueError(f"Committee members know different elements: {sorted(species)}.")
        self.warn_force_uncertainty = warn_force_uncertainty
        self._warned = False

    @classmethod
    def from_family(cls, family: str, **options: Any) -> CommitteeCalculator:
        """Every shipped member of a family (``chno``: original, tiny, ultra-tiny)."""
        if family not in FAMILIES:
            raise ValueError(f"Unknown family {family!r}; known: {', '.join(FAMILIES)}.")
        return cls([m.name for m in FAMILIES[family].members], **options)

    def reset_warning(self) -> None:
        """Warn again at the next structure over the threshold."""
        self._warned = False

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        """Run every member; store means and spreads (see the module docstring)."""
        super().calculate(atoms, properties, system_changes)
        wanted = ["energy", "forces", "energies"] + (["stress"] if "stress" in properties else [])
        rows = []
        for member in self.members:
            member.calculate(self.atoms, wanted, all_changes)
            rows.append(member.results)
        for key in wanted:
            self.results[key] = np.mean([r[key] for r in rows], axis=0)
        self.results["free_energy"] = self.results["energy"]
        self.results["energy_uncertainty"] = float(np.std([r["energy"] for r in rows]))
        spread = np.std([r["forces"] for r in rows], axis=0)  # (N, 3)
        self.results["forces_uncertainty"] = np.linalg.norm(spread, axis=1)
        self._maybe_warn()

    def _maybe_warn(self) -> None:
        worst = float(np.max(self.results["forces_uncertainty"], initial=0.0))
        limit = self.warn_force_uncertainty
        if limit is None or worst <= limit or self._warned:
            return
        self._warned = True
        warnings.warn(
            f"Committee force uncertainty {worst:.3f} eV/A exceeds {limit} eV/A: this "
            "structure is probably outside the students' training domain; check it with the "
            "teacher, or add such structures to the training data.",
            OutOfDomainWarning,
            stacklevel=3,
        )
