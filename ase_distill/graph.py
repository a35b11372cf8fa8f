"""Batched graphs: many structures in one disjoint graph, per-structure energies by segment sum."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols

from ase_distill.neighbors import MIN_DISTANCE, neighbor_list


@dataclass
class AtomsGraph:
    """Tensors of one batch of structures.

    Attributes:
        positions: ``(N, 3)`` Cartesian positions, Angstrom.
        numbers: ``(N,)`` atomic numbers.
        cell: ``(B, 3, 3)`` cells (rows are vectors; zeros for molecules).
        batch: ``(N,)`` structure index of each atom.
        edge_index: ``(2, E)`` receiver ``i`` and sender ``j``, sorted by receiver.
        edge_shift: ``(E, 3)`` integer cell shifts (as floats) of the sender image.
        offsets: ``(N + 1,)`` CSR row pointer of the receivers (reused by every layer).
        n_structures: ``B``.

    """

    positions: torch.Tensor
    numbers: torch.Tensor
    cell: torch.Tensor
    batch: torch.Tensor
    edge_index: torch.Tensor
    edge_shift: torch.Tensor
    offsets: torch.Tensor
    n_structures: int

    @property
    def n_atoms(self) -> int:
        """Total number of atoms in the batch."""
        return int(self.positions.shape[0])

    def model_inputs(self) -> tuple[torch.Tensor, ...]:
        """Positional tensor inputs of ``StudentModel.atomic_energies`` / ``ConservativePotential``.

        Order: positions, numbers, cell, batch, edge_index, edge_shift, offsets.
        """
        return (
            self.positions,
            self.numbers,
            self.cell,
            self.batch,
            self.edge_index,
            self.edge_shift,
            self.offsets,
        )

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        """Copy to ``device``; floating tensors are cast to ``dtype``."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                value = value.to(device=device, dtype=dtype if value.is_floating_point() else None)
            out[f.name] = value
        return AtomsGraph(**out)


def check_atoms(atoms: Atoms, species: Sequence[int] | None = None) -> None:
    """Raise ``ValueError`` for input no model can evaluate.

    Args:
        atoms: the structure.
        species: atomic numbers the model knows; ``None`` skips the element check.

    """
    if not isinstance(atoms, Atoms):
        raise ValueError(f"Expected an ase.Atoms object, got {type(atoms).__name__}.")
    if len(atoms) == 0:
        raise ValueError("The Atoms object is empty; add atoms before asking for energies.")
    if not np.all(np.isfinite(atoms.positions)):
        bad = np.flatnonzero(~np.all(np.isfinite(atoms.positions), axis=1))
        raise ValueError(
            f"Positions of atoms {bad[:10].tolist()} are NaN or infinite; the structure (or the "
            "MD run that produced it) is broken."
        )
    if np.asarray(atoms.pbc).any() and not np.all(np.isfinite(atoms.cell[:])):
        raise ValueError("The cell contains NaN or infinite values; set a finite cell.")
    if species is not None:
        known = set(int(z) for z in species)
        unknown = sorted(set(int(z) for z in atoms.numbers) - known)
        if unknown:
            raise ValueError(
                "Elements "
                + ", ".join(chemical_symbols[z] for z in unknown)
                + " are not supported by this model; it knows "
                + ", ".join(chemical_symbols[z] for z in sorted(known))
                + ". Use a student trained on these elements (see `ase-distill train`)."
            )


@dataclass
class StructureGraph:
    """The graph of one structure as numpy arrays: what training caches per frame.

    Attributes:
        numbers: ``(n,)`` atomic numbers.
        positions: ``(n, 3)`` positions, Angstrom.
        cell: ``(3, 3)`` cell (zeros for a molecule).
        edges: ``(2, E)`` receiver and sender, sorted by receiver.
        shifts: ``(E, 3)`` integer cell shifts of the sender image.

    """

    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    edges: np.ndarray
    shifts: np.ndarray


def structure_graph(
    atoms: Atoms,
    cutoff: float,
    species: Sequence[int] | None = None,
    min_distance: float | None = MIN_DISTANCE,
) -> StructureGraph:
    """Validate one structure and build its neighbour graph (see :func:`atoms_to_graph`)."""
    check_atoms(atoms, species)
    i, j, s = neighbor_list(atoms, cutoff, min_distance)
    return StructureGraph(
        numbers=np.asarray(atoms.numbers, dtype=np.int64),
        positions=np.asarray(atoms.positions, dtype=np.float64),
        cell=np.asarray(atoms.cell[:], dtype=np.float64),
        edges=np.stack([i, j]).astype(np.int64),
        shifts=np.asarray(s, dtype=np.float64),
    )


def batch_graphs(
    graphs: Sequence[StructureGraph],
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> AtomsGraph:
    """Join per-structure graphs into one disjoint batched graph (atom indices offset)."""
    if len(graphs) == 0:
        raise ValueError("No structures given; pass at least one ase.Atoms.")
    counts = [len(g.numbers) for g in graphs]
    if len(graphs) == 1:  # every calculator call: no copies
        g = graphs[0]
        numbers, positions, cells, edges, shifts = (
            g.numbers,
            g.positions,
            g.cell[None],
            g.edges,
            g.shifts,
        )
    else:
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        numbers = np.concatenate([g.numbers for g in graphs])
        positions = np.concatenate([g.positions for g in graphs])
        cells = np.stack([g.cell for g in graphs])
        edges = np.concatenate([g.edges + s for g, s in zip(graphs, starts)], 1)
        shifts = np.concatenate([g.shifts for g in graphs])
    n = int(sum(counts))
    # Edges are sorted by receiver (neighbor_list sorts them): the CSR row pointer is a search.
    offsets = np.searchsorted(edges[0], np.arange(n + 1))

    def floats(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, dtype=dtype, device=device)

    def ints(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.long, device=device)

    return AtomsGraph(
        positions=floats(positions),
        numbers=ints(numbers),
        cell=floats(cells),
        batch=ints(np.repeat(np.arange(len(graphs)), counts)),
        edge_index=ints(edges),
        edge_shift=floats(shifts),
        offsets=ints(offsets),
        n_structures=len(graphs),
    )


def atoms_to_graph(
    structures: Atoms | Sequence[Atoms],
    cutoff: float,
    species: Sequence[int] | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    min_distance: float | None = MIN_DISTANCE,
) -> AtomsGraph:
    """Build one batched graph from one or many structures (validated first).

    The one graph builder of the project: the calculator, training (which caches the
    per-structure :func:`structure_graph` and batches with :func:`batch_graphs`), validation
    and export all go through it.

    Raises:
        ValueError: empty structures, non-finite positions, unknown elements, degenerate cells,
            atoms closer than ``min_distance``.

    """
    if isinstance(structures, Atoms):
        structures = [structures]
    graphs = [structure_graph(a, cutoff, species, min_distance) for a in structures]
    return batch_graphs(graphs, dtype, device)
