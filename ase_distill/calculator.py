"""ASE calculator for distilled students."""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from ase_distill.graph import atoms_to_graph
from ase_distill.memory import check_memory
from ase_distill.model import ConservativePotential, StudentModel, functional_evaluate
from ase_distill.registry import load_student, resolve_student


def _checked_device(device: str | torch.device) -> torch.device:
    """``torch.device(device)``, refusing a CUDA device that this machine does not have."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"Unknown device {device!r}; use 'cpu' or 'cuda'.") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={str(device)!r} but this torch build sees no CUDA device "
            f"(torch {torch.__version__}); use device='cpu', or install a CUDA build of torch on "
            "a machine with a GPU."
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"{device} does not exist: {torch.cuda.device_count()} CUDA device(s).")
    return device


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
        compile: evaluate through ``torch.compile`` of the functional energy/forces/stress
            (:func:`~ase_distill.model.functional_evaluate`; dynamic shapes, so changing atom
            and edge counts do not recompile). Faster on CPU (``benchmarks/``) after a one-off
            compilation of 10-60 s per dtype and stress setting; needs a C++ compiler.
        **kwargs: passed to :class:`ase.calculators.calculator.Calculator`.

    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(
        self,
        model: str | StudentModel | torch.jit.ScriptModule = "tiny",
        *,
        card: dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float64,
        compile: bool = False,
        **kwargs: Any,
    ) -> None:
        if isinstance(model, str | os.PathLike):
            model, card = resolve_student(model)
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}.")
        super().__init__(**kwargs)
        self.device = _checked_device(device)
        self.dtype = dtype
        self.card = dict(card or {})
        if isinstance(model, StudentModel):
            # A private copy: the caller's module keeps its device, dtype and grad flags.
            self.model: StudentModel | None = copy.deepcopy(model).to(self.device, dtype).eval()
            for p in self.model.parameters():
                p.requires_grad_(False)
            self.potential = ConservativePotential(self.model)
            self._species, self._cutoff = self.model.species, self.model.cutoff
        elif isinstance(model, torch.jit.ScriptModule):
            if "architecture" not in self.card:
                raise ValueError("A TorchScript student needs its model card (architecture).")
            self.model = None
            self.potential = model.to(self.device, dtype).eval()
            arch = self.card["architecture"]
            self._species, self._cutoff = tuple(arch["species"]), float(arch["cutoff"])
        else:
            raise ValueError(
                f"model must be a student name, a checkpoint path or a StudentModel, got "
                f"{type(model).__name__}."
            )
        self.compiled = bool(compile)
        self._compiled_fn = None
        if self.compiled:
            if self.model is None:
                raise ValueError("compile=True needs an eager student, not a TorchScript file.")
            self._compiled_fn = torch.compile(
                functools.partial(functional_evaluate, self.model), dynamic=True
            )

    @classmethod
    def from_name(cls, name: str, **kwargs: Any) -> DistilledCalculator:
        """A shipped student by name (aliases such as ``ultra_tiny`` accepted)."""
        model, card = load_student(name)
        return cls(model, card=card, **kwargs)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, **kwargs: Any) -> DistilledCalculator:
        """A student from a file.

        ``NAME.pt`` + ``NAME.json`` (either path, or the stem), or an exported TorchScript file
        (``.ts`` / ``.torchscript``). ONNX files run in :class:`ase_distill.export.OnnxCalculator`.
        """
        model, card = resolve_student(Path(path))
        return cls(model, card=card, **kwargs)

    @property
    def species(self) -> tuple[int, ...]:
        """Atomic numbers the student knows."""
        return self._species

    @property
    def cutoff(self) -> float:
        """Interaction radius, Angstrom."""
        return self._cutoff

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
        g = atoms_to_graph(atoms, self.cutoff, self.species, dtype=self.dtype, device=self.device)
        arch = self.card.get("architecture") or self.model.config.to_dict()
        check_memory(
            g.n_atoms, g.edge_index.shape[1], arch["features"], arch["interactions"], self.dtype,
            self.device,
        )  # fmt: skip
        if self._compiled_fn is not None:
            out = self._compiled_fn(g.model_inputs(), want_stress)
        else:
            with torch.enable_grad():
                out = self.potential(*g.model_inputs(), g.n_structures, True, want_stress, False)
        energy = float(out["energy"].detach().sum())
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["energies"] = out["energies"].detach().cpu().numpy().astype(np.float64)
        self.results["forces"] = out["forces"].detach().cpu().numpy().astype(np.float64)
        if want_stress:
            full = out["stress"][0].detach().cpu().numpy().astype(np.float64)
            self.results["stress"] = full_3x3_to_voigt_6_stress(full)
