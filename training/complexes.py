"""Non-covalent complexes for training data: dimers at chosen contacts, microsolvated solutes.

Single molecules teach a student nothing about the forces between molecules. These builders
place whole molecules around each other at controlled separations (the closest contact between
them), so that hydrogen bonds, stacking and solvation shells are sampled from the repulsive wall
to the long range:

* :func:`dimer`: molecule ``b`` around molecule ``a``, random orientation, closest contact
  ``separation`` (an H-bond contact is ~1.8-2.0 A between H and O/N);
* :func:`stacked_dimer`: ``b`` parallel to ``a``'s mean plane, ``gap`` A above it;
* :func:`microsolvate`: a solute with ``n`` waters, each at a first-shell contact.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import molecule

#: No two atoms of different molecules closer than this (A): below it the teacher's energies
#: are far above anything MD visits.
MIN_CONTACT = 1.2


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    a, b, c, d = q / np.linalg.norm(q)
    return np.array(
        [
            [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
            [2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)],
            [2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d],
        ]
    )


def closest_contact(a: Atoms, b: Atoms) -> float:
    """Smallest distance between an atom of ``a`` and an atom of ``b`` (A)."""
    diff = a.positions[:, None, :] - b.positions[None, :, :]
    return float(np.sqrt((diff**2).sum(-1)).min())


def _place_at_contact(fixed: Atoms, mobile: Atoms, direction: np.ndarray, separation: float):
    """Move ``mobile`` along ``direction`` until its closest contact with ``fixed`` is exact."""
    lo, hi = 0.0, 50.0
    base = mobile.positions - mobile.positions.mean(0) + fixed.positions.mean(0)
    for _ in range(60):  # bisection on the distance along the direction
        mid = 0.5 * (lo + hi)
        mobile.positions = base + mid * direction
        if closest_contact(fixed, mobile) < separation:
            lo = mid
        else:
            hi = mid
    mobile.positions = base + hi * direction
    return mobile


def dimer(a: Atoms, b: Atoms, separation: float, seed: int = 0) -> Atoms:
    """``a`` plus a randomly oriented copy of ``b`` whose closest contact is ``separation`` A.

    Raises:
        ValueError: ``separation`` below :data:`MIN_CONTACT`.
    """
    if separation < MIN_CONTACT:
        raise ValueError(f"separation must be >= {MIN_CONTACT} A, got {separation}.")
    rng = np.random.default_rng(seed)
    mobile = b.copy()
    mobile.positions = (mobile.positions - mobile.positions.mean(0)) @ _random_rotation(rng).T
    direction = rng.normal(size=3)
    placed = _place_at_contact(a, mobile, direction / np.linalg.norm(direction), separation)
    out = a.copy() + placed
    out.info["complex"] = {"kind": "dimer", "separation_A": separation, "seed": seed}
    return out


def stacked_dimer(a: Atoms, b: Atoms, gap: float, seed: int = 0) -> Atoms:
    """``b`` laid parallel to ``a``'s best-fit plane, ``gap`` A above ``a``'s centre.

    ``b`` is also slipped sideways by up to 1.5 A (parallel-displaced stacking).
    """
    if gap < 2.5:
        raise ValueError(f"a stacking gap must be >= 2.5 A, got {gap}.")
    rng = np.random.default_rng(seed)
    normal_a = _plane_normal(a)
    mobile = b.copy()
    mobile.positions -= mobile.positions.mean(0)
    mobile.positions = mobile.positions @ _rotation_between(_plane_normal(mobile), normal_a).T
    slip = rng.normal(size=3)
    slip -= slip.dot(normal_a) * normal_a
    slip *= rng.uniform(0, 1.5) / max(np.linalg.norm(slip), 1e-12)
    mobile.positions += a.positions.mean(0) + gap * normal_a + slip
    if closest_contact(a, mobile) < MIN_CONTACT:
        raise ValueError(f"gap {gap} A puts atoms closer than {MIN_CONTACT} A; use a larger gap.")
    out = a.copy() + mobile
    out.info["complex"] = {"kind": "stacked", "gap_A": gap, "seed": seed}
    return out


def _plane_normal(atoms: Atoms) -> np.ndarray:
    centred = atoms.positions - atoms.positions.mean(0)
    return np.linalg.svd(centred)[2][-1]


def _rotation_between(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A rotation matrix taking unit vector ``u`` to unit vector ``v``."""
    axis = np.cross(u, v)
    s, c = np.linalg.norm(axis), float(np.dot(u, v))
    if s < 1e-12:
        return np.eye(3) if c > 0 else -np.eye(3) + 2 * np.outer(_any_normal(u), _any_normal(u))
    k = axis / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * kx @ kx


def _any_normal(u: np.ndarray) -> np.ndarray:
    other = np.eye(3)[np.argmin(np.abs(u))]
    n = np.cross(u, other)
    return n / np.linalg.norm(n)


def microsolvate(
    solute: Atoms, n_waters: int, contact: tuple[float, float] = (1.8, 2.6), seed: int = 0
) -> Atoms:
    """``solute`` with ``n_waters`` waters, built one water at a time.

    Each water's closest contact with everything placed before it is drawn from ``contact`` (A).
    """
    if not 1 <= n_waters <= 30:
        raise ValueError(f"n_waters must be 1..30, got {n_waters}.")
    lo, hi = contact
    if not MIN_CONTACT <= lo <= hi:
        raise ValueError(f"contact range must satisfy {MIN_CONTACT} <= low <= high, got {contact}.")
    rng = np.random.default_rng(seed)
    cluster = solute.copy()
    for _ in range(n_waters):
        water = molecule("H2O")
        water.positions = (water.positions - water.positions.mean(0)) @ _random_rotation(rng).T
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        cluster += _place_at_contact(cluster, water, direction, rng.uniform(lo, hi))
    cluster.info["complex"] = {"kind": "microsolvated", "waters": n_waters, "seed": seed}
    return cluster
