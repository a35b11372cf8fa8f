"""Neighbour lists (vesin) with the checks a calculator owes its user.

Edges are returned sorted by receiver ``i`` so that message aggregation can use CSR offsets.
The vector of edge ``(i, j, S)`` is ``r_j - r_i + S @ cell``.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from vesin import NeighborList

#: Closest allowed approach of two atoms, in Angstrom. The students were never trained below it
#: (the shortest bond, H-H, is 0.74 A); closer atoms mean a broken structure or an exploding run.
MIN_DISTANCE = 0.35


def check_cell(atoms: Atoms) -> None:
    """Raise ``ValueError`` if a periodic direction has a zero or degenerate cell vector."""
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if not pbc.any():
        return
    cell = np.asarray(atoms.cell[:], dtype=float)
    lengths = np.linalg.norm(cell, axis=1)
    for axis in np.flatnonzero(pbc):
        if lengths[axis] < 1e-6:
            raise ValueError(
                f"Periodic direction {axis} has a zero-length cell vector {cell[axis].tolist()}; "
                "set a cell with atoms.set_cell(...) or turn periodicity off with "
                f"atoms.pbc[{axis}] = False."
            )
    # Volume spanned by the periodic vectors (area / length for 2D / 1D periodicity).
    vectors = cell[pbc]
    gram = vectors @ vectors.T
    measure = np.sqrt(max(np.linalg.det(gram), 0.0))
    if measure < 1e-6 * np.prod(lengths[pbc]):
        raise ValueError(
            f"The periodic cell vectors {vectors.tolist()} are linearly dependent (degenerate "
            "cell); give the periodic directions independent cell vectors."
        )


def _box_for(atoms: Atoms) -> np.ndarray:
    """A box vesin accepts: the cell, with non-periodic zero vectors filled in (unused)."""
    cell = np.array(atoms.cell[:], dtype=np.float64)
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if not pbc.any():
        return np.zeros((3, 3))
    for axis in range(3):
        if not pbc[axis] and np.linalg.norm(cell[axis]) < 1e-6:
            # A direction orthogonal to the others; its length does not matter when not periodic.
            others = [cell[k] for k in range(3) if k != axis]
            normal = np.cross(others[0], others[1])
            if np.linalg.norm(normal) < 1e-6:
                normal = np.eye(3)[axis]
            cell[axis] = normal / np.linalg.norm(normal)
    return cell


#: Molecules up to this many atoms get their pairs from one numpy distance matrix: 10x less
#: overhead than a cell-list library call at 24 atoms, where graph building is a large share of
#: an energy+forces call (``benchmarks/``).
SMALL_MOLECULE = 200


def _all_pairs(
    positions: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(i, j, S, d)`` of a molecule from its distance matrix, ordered by ``i`` then ``j``."""
    diff = positions[None, :, :] - positions[:, None, :]
    dist = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    np.fill_diagonal(dist, np.inf)
    i, j = np.nonzero(dist < cutoff)
    return i, j, np.zeros((len(i), 3), dtype=np.int64), dist[i, j]


def neighbor_list(
    atoms: Atoms, cutoff: float, min_distance: float | None = MIN_DISTANCE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full neighbour list of ``atoms`` within ``cutoff``, sorted by receiver.

    Args:
        atoms: structure; molecules (no pbc), periodic and mixed-pbc cells all work, including
            cells smaller than the cutoff (several images of one atom are neighbours).
        cutoff: radius in Angstrom.
        min_distance: raise if two atoms are closer than this (``None`` skips the check).

    Returns:
        ``(i, j, S)``: receiver and sender indices (int64) and integer cell shifts ``(E, 3)``.

    Raises:
        ValueError: degenerate periodic cell, or atoms closer than ``min_distance``.

    """
    check_cell(atoms)
    positions = np.ascontiguousarray(atoms.positions, dtype=np.float64)
    pbc = [bool(p) for p in atoms.pbc]
    small_molecule = not any(pbc) and len(positions) <= SMALL_MOLECULE
    if small_molecule:
        i, j, shifts, d = _all_pairs(positions, cutoff)
    else:
        i, j, shifts, d = NeighborList(cutoff=float(cutoff), full_list=True).compute(
            positions, _box_for(atoms), pbc, quantities="ijSd"
        )
        i = np.asarray(i, dtype=np.int64)
        j = np.asarray(j, dtype=np.int64)
        shifts = np.asarray(shifts, dtype=np.int64).reshape(-1, 3)
    if min_distance is not None and len(d) and float(np.min(d)) < min_distance:
        k = int(np.argmin(d))
        raise ValueError(
            f"Atoms {i[k]} and {j[k]} are {float(d[k]):.3f} A apart, closer than the minimum "
            f"{min_distance} A the model accepts; check the structure (overlapping atoms, wrong "
            "units, or an MD run that has blown up)."
        )
    if small_molecule:
        return i, j, shifts  # np.nonzero of the distance matrix: already sorted by i, then j
    order = np.lexsort((j, i))
    return i[order], j[order], shifts[order]
