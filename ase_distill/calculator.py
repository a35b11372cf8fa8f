"""ASE calculator for distilled students."""

from __future__ import annotations

import copy
import os
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from ase_distill.checkpoint import load_checkpoint
from ase_distill.graph import atoms_to_graph
from ase_distill.model import ConservativePotential, StudentModel
from ase_distill.registry import load_student


class DistilledCalculator(Calculator):
    """Energy, forces, stress and per-atom energies from a distilled student.

    ``DistilledCalculator("tiny")`` loads a shipped student by name; use
    :meth:`from_checkpoint` for your own. Forces are ``-dE/dr`` (conservative) and the stress is
    the strain derivative over the volume, in ASE's Voigt order (xx, yy, zz, yz, xz, xy), for cells
    periodic in all three directions. Molecules (no cell) and mixed pbc work for energy and forces.

    Args:
        model: a shipped student's name (``"original"``, ``"tiny"``, ``"ultra-tiny"``) or a
            :class:`~ase_distill.model.StudentModel`.
        card: model card of ``model`` (filled in when loading by name).
        device: torch device to evaluate on.
        dtype: floating precision of the evaluation; float64 (default) keeps NVE energy
            conservation at the level of the model, float32 is faster.
        **kwargs: passed to :class:`ase.calculators.calculator.Calculator`.

    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(
        self,
        model: str | StudentModel = "tiny",
        *,
        card: dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64,
        **kwargs: Any,
    ) -> None:
        if isinstance(model, str):
            model, card = load_student(model)
        if not isinstance(model, StudentModel):
            raise ValueError(
                f"model must be a student name or a StudentModel, got {type(model).__name__}; "
                "for a file use DistilledCalculator.from_checkpoint(path)."
            )
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}.")
        super().__init__(**kwargs)
        self.device = torch.device(device)
        self.dtype = dtype
        self.card = dict(card or {})
        # A private copy: the caller's module keeps its device, dtype and grad flags.
        self.model = copy.deepcopy(model).to(device=self.device, dtype=dtype).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.potential = ConservativePotential(self.model)

    @classmethod
    def from_name(cls, name: str, **kwargs: Any) -> DistilledCalculator:
        """A shipped student by name (aliases such as ``ultra_tiny`` accepted)."""
        model, card = load_student(name)
        return cls(model, card=card, **kwargs)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, **kwargs: Any) -> DistilledCalculator:
        """A student saved as ``PATH.pt`` + ``PATH.json`` (either path, or the stem)."""
        model, card = load_checkpoint(path)
        return cls(model, card=card, **kwargs)

    @property
    def species(self) -> tuple[int, ...]:
        """Atomic numbers the student knows."""
        return self.model.species

    @property
    def cutoff(self) -> float:
        """Interaction radius, Angstrom."""
        return self.model.cutoff

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: list[str] | tuple[str, ...] = ("energy",),
        system_changes: list[str] = all_changes,
    ) -> None:
        """Compute the requested properties (see :class:`ase.calculators.calculator.Calculator`)."""
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        want_stress = "stress" in properties
        if want_stress and not np.asarray(atoms.pbc).all():
            raise PropertyNotImplementedError(
                "stress needs a cell periodic in all three directions (atoms.pbc = True with a "
                "cell); this structure is not fully periodic."
            )
        graph = atoms_to_graph(
            atoms, self.model.cutoff, self.model.species, dtype=self.dtype, device=self.device
        )
        with torch.enable_grad():
            out = self.potential(graph, forces=True, stress=want_stress)
        energy = float(out["energy"].detach().sum())
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["energies"] = out["energies"].detach().cpu().numpy().astype(np.float64)
        self.results["forces"] = out["forces"].detach().cpu().numpy().astype(np.float64)
        if want_stress:
            full = out["stress"][0].detach().cpu().numpy().astype(np.float64)
            self.results["stress"] = full_3x3_to_voigt_6_stress(full)
