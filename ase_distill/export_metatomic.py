"""Export a student as a metatomic ``AtomisticModel``: LAMMPS, i-PI, TorchSim, ASE.

metatomic (``pip install ase-distill[metatomic]``) is the common interface of atomistic ML
models and simulation engines: the exported file runs in LAMMPS (``pair_style metatomic``),
i-PI (its metatomic driver), TorchSim (``metatomic-torchsim``) and ASE (``metatomic-ase``).

The engine gives the model its systems and a full neighbour list of the student's cutoff; the
model returns the ``energy`` output (per system, or per atom when the engine asks), and the
engine takes forces and stress by autograd through positions and cell, which the student's
edge vectors depend on. The student's model card travels in the metadata (``extra``).
"""

# No ``from __future__ import annotations``: metatomic and TorchScript read these annotations
# as real types, and TorchScript wants typing's List / Dict / Optional.
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple  # noqa: UP035

import torch

from ase_distill.model import StudentModel

try:
    import metatomic.torch as mta
    from metatensor.torch import Labels, TensorBlock, TensorMap
    from metatomic.torch import ModelOutput, NeighborListOptions, System
except ImportError as exc:  # the extra is optional: say how to get it
    raise ImportError(
        "metatomic export needs metatomic-torch: `pip install ase-distill[metatomic]`."
    ) from exc


def _gather(
    systems: List[System], neighbors: NeighborListOptions
) -> Tuple[List[torch.Tensor], torch.Tensor]:
    """Student inputs of all systems as one batched graph, and the (system, atom) samples."""
    positions: List[torch.Tensor] = []
    numbers: List[torch.Tensor] = []
    cells: List[torch.Tensor] = []
    batch: List[torch.Tensor] = []
    edges: List[torch.Tensor] = []
    shifts: List[torch.Tensor] = []
    atom_ids: List[torch.Tensor] = []
    start = 0
    for k, system in enumerate(systems):
        n = len(system)
        pairs = system.get_neighbor_list(neighbors).samples.values
        # metatomic's pair (first, second, shift) has vector r_second - r_first +
        # shift @ cell: first is our receiver i, second our sender j.
        edges.append(pairs[:, :2].T.to(torch.long) + start)
        shifts.append(pairs[:, 2:5])
        positions.append(system.positions)
        numbers.append(system.types.to(torch.long))
        cells.append(system.cell)
        batch.append(torch.full((n,), k, dtype=torch.long, device=system.device))
        atom_ids.append(torch.arange(n, device=system.device))
        start += n
    pos = torch.cat(positions)
    inputs = [
        pos,
        torch.cat(numbers),
        torch.stack(cells),
        torch.cat(batch),
        torch.cat(edges, dim=1),
        torch.cat(shifts).to(pos.dtype),
    ]
    samples = torch.stack([torch.cat(batch), torch.cat(atom_ids)], dim=1).to(torch.int32)
    return inputs, samples


def _energy_map(
    values: torch.Tensor,
    samples: torch.Tensor,
    per_atom: bool,
    n_systems: int,
    selected_atoms: Optional[Labels],
) -> TensorMap:
    """Per-atom ``values`` as a metatomic energy-like output: per atom, or summed per system."""
    if selected_atoms is not None:
        keep = torch.zeros(samples.shape[0], dtype=torch.bool, device=values.device)
        chosen = selected_atoms.values.to(samples.device)
        for row in range(chosen.shape[0]):
            keep |= (samples == chosen[row]).all(dim=1)
        values, samples = values[keep], samples[keep]
    properties = Labels(["energy"], torch.zeros((1, 1), dtype=torch.int32, device=values.device))
    keys = Labels(["_"], torch.zeros((1, 1), dtype=torch.int32, device=values.device))
    if per_atom:
        block = TensorBlock(
            values=values[:, None],
            samples=Labels(["system", "atom"], samples),
            components=torch.jit.annotate(List[Labels], []),
            properties=properties,
        )
        return TensorMap(keys, [block])
    total = torch.zeros((n_systems, 1), dtype=values.dtype, device=values.device)
    total = total.index_add(0, samples[:, 0].to(torch.long), values[:, None])
    system_ids = torch.arange(n_systems, device=values.device, dtype=torch.int32)
    block = TensorBlock(
        values=total,
        samples=Labels(["system"], system_ids[:, None]),
        components=torch.jit.annotate(List[Labels], []),
        properties=properties,
    )
    return TensorMap(keys, [block])


class _FullNeighborList(torch.nn.Module):
    """A metatomic module that asks the engine for one full neighbour list of ``cutoff``."""

    def __init__(self, cutoff: float) -> None:
        super().__init__()
        self.neighbors = NeighborListOptions(
            cutoff=cutoff, full_list=True, strict=True, requestor="ase-distill"
        )

    def requested_neighbor_lists(self) -> List[NeighborListOptions]:
        """One full neighbour list of the cutoff."""
        return [self.neighbors]


class MetatomicStudent(_FullNeighborList):
    """Student energies on metatomic systems (see the module docstring)."""

    def __init__(self, student: StudentModel) -> None:
        super().__init__(student.cutoff)
        self.student = student

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        """The ``energy`` output: per system, or per atom when the engine asks for it."""
        if "energy" not in outputs:
            return {}
        x, samples = _gather(systems, self.neighbors)
        energies = self.student.atomic_energies(x[0], x[1], x[2], x[3], x[4], x[5], None)
        per_atom = outputs["energy"].sample_kind == "atom"
        return {"energy": _energy_map(energies, samples, per_atom, len(systems), selected_atoms)}


class MetatomicCommittee(_FullNeighborList):
    """Mean energy of several students and, per atom, the spread of their atomic energies.

    Declares ``energy_uncertainty`` (eV): metatomic-ase (and engines that read it) warn when an
    atom's value passes their ``uncertainty_threshold``, i.e. when the committee disagrees.
    """

    def __init__(self, students: List[StudentModel]) -> None:
        cutoffs = sorted({float(s.cutoff) for s in students})
        if len(students) < 2 or len(cutoffs) != 1:
            raise ValueError("A metatomic committee needs >= 2 students with one cutoff.")
        super().__init__(cutoffs[0])
        self.members = torch.nn.ModuleList(students)

    def forward(
        self,
        systems: List[System],
        outputs: Dict[str, ModelOutput],
        selected_atoms: Optional[Labels] = None,
    ) -> Dict[str, TensorMap]:
        """``energy`` (the members' mean) and ``energy_uncertainty`` (their spread)."""
        result: Dict[str, TensorMap] = {}
        if len(outputs) == 0:
            return result
        x, samples = _gather(systems, self.neighbors)
        per_member: List[torch.Tensor] = []
        for member in self.members:
            per_member.append(member.atomic_energies(x[0], x[1], x[2], x[3], x[4], x[5], None))
        stacked = torch.stack(per_member)
        n = len(systems)
        for name in outputs.keys():
            values = stacked.mean(0) if name == "energy" else stacked.std(0, unbiased=False)
            per_atom = outputs[name].sample_kind == "atom"
            result[name] = _energy_map(values, samples, per_atom, n, selected_atoms)
        return result


def _frozen_copy(model: StudentModel, dtype) -> StudentModel:
    student = StudentModel(model.config)
    student.load_state_dict(model.state_dict())
    student = student.to(dtype).eval()
    for p in student.parameters():
        p.requires_grad_(False)
    return student


def committee_model(models: List[StudentModel], names: List[str], dtype=torch.float64):
    """Several students as one metatomic model with ``energy`` and ``energy_uncertainty``."""
    members = [_frozen_copy(m, dtype) for m in models]
    outputs = {
        "energy": mta.ModelOutput(unit="eV", sample_kind="atom"),
        "energy_uncertainty": mta.ModelOutput(unit="eV", sample_kind="atom"),
    }
    first = models[0]
    capabilities = mta.ModelCapabilities(
        outputs=outputs,
        atomic_types=list(first.species),
        interaction_range=first.cutoff * first.config.interactions,
        length_unit="angstrom",
        supported_devices=["cpu", "cuda"],
        dtype="float64" if dtype == torch.float64 else "float32",
    )
    metadata = mta.ModelMetadata(
        name=f"ase-distill committee ({', '.join(names)})",
        description="Mean of the students; energy_uncertainty: spread of their atomic energies.",
        authors=["ase-distill"],
    )
    return mta.AtomisticModel(MetatomicCommittee(members).eval(), metadata, capabilities)


def atomistic_model(model: StudentModel, card: dict[str, Any], dtype=torch.float64):
    """The student as a metatomic ``AtomisticModel`` (capabilities and metadata declared)."""
    student = _frozen_copy(model, dtype)
    capabilities = mta.ModelCapabilities(
        outputs={"energy": mta.ModelOutput(unit="eV", sample_kind="atom")},
        atomic_types=list(model.species),
        # message passing: each block sees one cutoff further
        interaction_range=model.cutoff * model.config.interactions,
        length_unit="angstrom",
        supported_devices=["cpu", "cuda"],
        dtype="float64" if dtype == torch.float64 else "float32",
    )
    teacher = (card.get("teacher") or {}).get("name", "unknown")
    metadata = mta.ModelMetadata(
        name=f"ase-distill {card.get('name', 'student')}",
        description=(
            f"{card.get('description', 'student potential')}; distilled from {teacher} "
            f"({', '.join(card.get('species', []))}; cutoff {model.cutoff} A)."
        ),
        authors=["ase-distill"],
        references={"architecture": ["https://arxiv.org/abs/2102.03150 (PaiNN)"]},
        extra={"model_card": json.dumps(card)},
    )
    return mta.AtomisticModel(MetatomicStudent(student).eval(), metadata, capabilities)


def export_metatomic(
    model: StudentModel, path: str | os.PathLike, card: dict[str, Any], dtype=torch.float64
) -> Path:
    """Save the student as a metatomic model file (TorchScript inside)."""
    from ase_distill.export import check_writable

    path = check_writable(path)
    atomistic_model(model, card, dtype).save(str(path))
    return path
