"""ASE calculator for distilled students."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from ase_distill.compiled import compiled_potential
from ase_distill.graph import AtomsGraph, atoms_to_graph
from ase_distill.memory import (
    check_memory,
    default_chunk_above,
    default_edge_chunk,
    estimate_call_bytes,
)
from ase_distill.model import ConservativePotential, StudentModel
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


#: The compiled package runs all edges at once: it is used only for graphs that are not chunked
#: and whose estimate stays below this. Measured, one thread, float32: 8x faster than eager on
#: caffeine (overhead-bound), 3.2x on 192 and 1.7x on 768 atoms of water (the first run of
#: ``benchmarks/test_water_speed.py``, commit 349b3c8); larger graphs run eagerly in chunks.
COMPILED_MAX_BYTES = 2**30


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
        dtype: floating precision of the evaluation; float64 (the default, unless ``fast``) keeps
            NVE energy conservation at the level of the model, float32 is faster.
        compile: evaluate through an ahead-of-time compiled package of the energy, forces and
            stress (:mod:`ase_distill.compiled`), built once per machine, student, precision and
            stress setting (30-60 s, needs a C++ compiler), cached on disk and loaded in
            milliseconds by every later process. ``True`` builds a missing package; ``"auto"``
            (the default) uses one only if it is already cached (``ase-distill compile NAME``,
            run by ``make install`` for ``tiny``, or an earlier ``compile=True``) and runs eagerly
            otherwise; ``False`` never uses one. Compiled and eager results agree to 1e-10 in
            float64 (tested). CPU students only; elsewhere ``"auto"`` means eager.
        fast: the small-molecule fast path: ``compile=True`` in float32 (unless ``dtype`` is
            given). Forces within 1e-5 eV/A of the float64 reference (tested).
        edge_chunk: edges per chunk of the bounded-memory path for large systems; ``None``
            picks :func:`~ase_distill.memory.default_edge_chunk` (about 4 MiB per edge tensor,
            256 MiB on a GPU), ``0`` turns chunking off. Only graphs whose unchunked estimate
            passes 512 MiB (8 GiB on a GPU; :func:`~ase_distill.memory.default_chunk_above`)
            are chunked.
        **kwargs: passed to :class:`ase.calculators.calculator.Calculator`.

    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(
        self,
        model: str | StudentModel | torch.jit.ScriptModule = "tiny",
        *,
        card: dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        compile: bool | str = "auto",
        fast: bool = False,
        edge_chunk: int | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(model, str | os.PathLike):
            model, card = resolve_student(model)
        if dtype is None:
            dtype = torch.float32 if fast else torch.float64
        if compile not in (True, False, "auto"):
            raise ValueError(f"compile must be True, False or 'auto', got {compile!r}.")
        compile = True if fast else compile
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
        arch = self.card.get("architecture") or self.model.config.to_dict()
        self._features, self._interactions = int(arch["features"]), int(arch["interactions"])
        if edge_chunk is None:
            edge_chunk = default_edge_chunk(self._features, dtype, self.device)
        if edge_chunk < 0:
            raise ValueError(f"edge_chunk must be >= 0 (0 turns chunking off), got {edge_chunk}.")
        self.edge_chunk = int(edge_chunk) if self.model is not None else 0
        self.chunk_above = default_chunk_above(
            self._features, self._interactions, dtype, self.device
        )
        if self.model is not None:
            self.model.edge_chunk, self.model.chunk_above = self.edge_chunk, self.chunk_above
        eager_cpu = self.model is not None and self.device.type == "cpu"
        if compile is True and not eager_cpu:
            raise ValueError(
                "compile=True (and fast=True) needs an eager student on the CPU, not a "
                "TorchScript file or a GPU; drop compile/fast there."
            )
        #: ``True`` (build when missing), ``"auto"`` (use when cached) or ``False``.
        self.compiled: bool | str = compile if eager_cpu else False
        self._packages: dict[bool, Any] = {}

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

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> list[str]:
        """What changed since the last calculation, as ASE's ``check_state`` reports it.

        ASE compares every per-atom array with ``np.isclose`` (its ``tol`` of 1e-15 makes that
        an exact comparison), which on a 24-atom molecule costs about a tenth of a compiled
        student call. The student depends on positions, numbers, cell and pbc only; those are
        compared exactly here, with the same result for everything the student computes.
        """
        old = self.atoms
        if old is None:
            return list(all_changes)
        pairs = {
            "positions": (old.positions, atoms.positions),
            "numbers": (old.numbers, atoms.numbers),
            "cell": (old.cell.array, atoms.cell.array),
            "pbc": (old.pbc, atoms.pbc),
        }
        return [name for name, (a, b) in pairs.items() if not np.array_equal(a, b)]

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
        n_edges = g.edge_index.shape[1]
        check_memory(
            g.n_atoms, n_edges, self._features, self._interactions, self.dtype, self.device,
            self.edge_chunk,
        )  # fmt: skip
        if self.uses_compiled_package(g.n_atoms, n_edges, want_stress):
            out = self.compiled_call(g, want_stress)
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

    def _package(self, stress: bool):
        """The compiled package for ``stress`` (built if ``compile=True``), or ``None``."""
        if stress not in self._packages:
            build = self.compiled is True
            self._packages[stress] = compiled_potential(self.model, self.dtype, stress, build=build)
        return self._packages[stress]

    def uses_compiled_package(self, n_atoms: int, n_edges: int, stress: bool = False) -> bool:
        """Whether a graph of this size goes through the compiled package (all edges at once)."""
        if not self.compiled or n_atoms < 2 or n_edges < 1:
            return False
        if self._chunked(n_edges):  # the package has no chunks: bounded memory comes first
            return False
        need = estimate_call_bytes(n_edges, self._features, self._interactions, self.dtype)
        return need <= COMPILED_MAX_BYTES and self._package(stress) is not None

    def _chunked(self, n_edges: int) -> bool:
        """Whether a graph of ``n_edges`` edges takes the chunked, bounded-memory path."""
        return 0 < self.edge_chunk and n_edges > max(self.edge_chunk, self.chunk_above)

    def compiled_call(self, g: AtomsGraph, want_stress: bool = False) -> dict[str, torch.Tensor]:
        """Energies, forces (and stress) of ``g`` from the cached compiled package.

        Needs ``compile=True`` or a cached package. ``g`` may hold several structures when no
        stress is asked.
        """
        if want_stress and g.n_structures != 1:
            raise ValueError("The compiled path gives the stress of one structure per call.")
        package = self._package(want_stress)
        if package is None:
            raise ValueError("No compiled package: use compile=True to build one.")
        if g.n_structures == 1:
            cell, shifts = g.cell[0], g.edge_shift
        else:
            # Several cells: hand the package Cartesian shift vectors and a unit cell. Forces
            # and energies are the same (shifts do not depend on positions); stress is not.
            receivers = g.batch[g.edge_index[0]]
            shifts = torch.einsum("ek,ekl->el", g.edge_shift, g.cell[receivers])
            cell = torch.eye(3, dtype=g.cell.dtype, device=g.cell.device)
        outputs = package(g.positions, g.numbers, cell, g.edge_index, shifts)
        energies, forces = outputs[1], outputs[2]
        if g.n_structures == 1:
            energy = outputs[0].reshape(1)  # the package's own total
        else:
            energy = torch.zeros(g.n_structures, dtype=energies.dtype)
            energy = energy.index_add_(0, g.batch, energies)
        out = {"energy": energy, "energies": energies, "forces": forces}
        if want_stress:
            out["stress"] = outputs[3][None]
        return out
