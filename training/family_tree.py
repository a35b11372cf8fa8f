"""Rattle-relax family trees: diverse, physically sensible distortions of a structure.

After Gardner et al. (2025, "augment-atoms"). A tree starts from one seed structure. Each new
child is made in four steps:

1. **parent**: drawn with probability ``beta * Boltzmann(E) + (1 - beta) * age``.
   The Boltzmann term favours low-energy members (exploit). The age term favours later
   generations (explore), so the tree walks away from the seed.
2. **rattle**: every atom moves by a Gaussian of width sigma, log-uniform in ``sigma_range``.
3. **relax**: at most ``max_relax_steps`` steps of ``R += (s / k) F / |F|`` (a Robbins-Monro
   step of decreasing length). After each step the relaxation stops at random, with probability
   ``min(0.25, exp(-dE / kT))``. The children therefore span from near the minimum to well
   above it, without the expense of full relaxations.
4. **reject**: atoms closer than ``min_distance``, any force above ``max_force``, or a child
   within ``min_rmsd`` (A) of a member already in the tree.

The teacher is any ASE calculator. Each child records its generation, parent and energy in
``atoms.info``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator


@dataclass(frozen=True)
class TreeSettings:
    """How a family tree grows (see the module docstring)."""

    children: int = 20
    temperature_K: float = 300.0
    beta: float = 0.5
    sigma_range: tuple[float, float] = (0.01, 0.15)
    max_relax_steps: int = 20
    max_force: float = 30.0
    min_distance: float = 0.5
    min_rmsd: float = 0.05
    attempts_per_child: int = 10

    def __post_init__(self) -> None:
        lo, hi = self.sigma_range
        if not 0 < lo <= hi:
            raise ValueError(f"sigma_range must satisfy 0 < low <= high, got {self.sigma_range}.")
        if not 0 <= self.beta <= 1:
            raise ValueError(f"beta must be in [0, 1], got {self.beta}.")
        if self.children < 1 or self.max_relax_steps < 0 or self.attempts_per_child < 1:
            raise ValueError("children and attempts_per_child must be >= 1, steps >= 0.")
        if not (self.temperature_K > 0 and self.max_force > 0 and self.min_distance > 0):
            raise ValueError("temperature_K, max_force and min_distance must be > 0.")


def _labelled(atoms: Atoms, calc: Calculator) -> tuple[float, np.ndarray]:
    atoms.calc = calc
    return float(atoms.get_potential_energy()), atoms.get_forces().copy()


def _min_distance(atoms: Atoms) -> float:
    if len(atoms) < 2:
        return float("inf")
    d = atoms.get_all_distances(mic=bool(atoms.pbc.any()))
    return float(d[np.triu_indices(len(atoms), 1)].min())


def choose_parent(
    energies: np.ndarray, generations: np.ndarray, beta: float, kt: float, rng
) -> int:
    """Index of the next parent: ``beta`` Boltzmann weight + ``1 - beta`` generation weight."""
    boltzmann = np.exp(-(energies - energies.min()) / kt)
    age = generations + 1.0
    p = beta * boltzmann / boltzmann.sum() + (1 - beta) * age / age.sum()
    return int(rng.choice(len(p), p=p / p.sum()))


def _relax(child: Atoms, calc: Calculator, parent_energy: float, s: TreeSettings, kt, rng):
    """Steps of decreasing length along the forces, stopping at random; returns E and F."""
    energy, forces = _labelled(child, calc)
    step_length = np.exp(rng.uniform(*np.log(s.sigma_range)))
    for k in range(1, s.max_relax_steps + 1):
        norms = np.linalg.norm(forces, axis=1, keepdims=True)
        child.positions = child.positions + step_length / k * forces / np.maximum(norms, 1e-12)
        energy, forces = _labelled(child, calc)
        stop = min(0.25, float(np.exp(-max(energy - parent_energy, 0.0) / kt)))
        if rng.random() < stop:
            break
    return energy, forces


def grow_tree(
    seed_structure: Atoms, calc: Calculator, settings: TreeSettings, seed: int = 0
) -> list[Atoms]:
    """The seed (generation 0) and ``settings.children`` accepted descendants.

    Raises:
        ValueError: no acceptable child in ``attempts_per_child`` tries (settings too harsh).
    """
    rng = np.random.default_rng(seed)
    kt = units.kB * settings.temperature_K
    root = seed_structure.copy()
    energy, _ = _labelled(root, calc)
    root.info.update(generation=0, parent=-1, energy=energy)
    tree = [root]
    while len(tree) <= settings.children:
        for _ in range(settings.attempts_per_child):
            child = _try_child(tree, calc, settings, kt, rng)
            if child is not None:
                tree.append(child)
                break
        else:
            raise ValueError(
                f"No acceptable child in {settings.attempts_per_child} tries after "
                f"{len(tree) - 1} children; lower sigma_range or max_relax_steps, or raise "
                "max_force."
            )
    return tree


def _try_child(tree: list[Atoms], calc, s: TreeSettings, kt: float, rng) -> Atoms | None:
    energies = np.array([a.info["energy"] for a in tree])
    generations = np.array([a.info["generation"] for a in tree], dtype=float)
    index = choose_parent(energies, generations, s.beta, kt, rng)
    parent = tree[index]
    child = parent.copy()
    sigma = np.exp(rng.uniform(*np.log(s.sigma_range)))
    child.positions = child.positions + rng.normal(scale=sigma, size=child.positions.shape)
    if _min_distance(child) < s.min_distance:
        return None
    energy, forces = _relax(child, calc, parent.info["energy"], s, kt, rng)
    if _min_distance(child) < s.min_distance or np.linalg.norm(forces, axis=1).max() > s.max_force:
        return None
    if any(_rmsd(child, member) < s.min_rmsd for member in tree):
        return None
    child.info = {"generation": parent.info["generation"] + 1, "parent": index, "energy": energy}
    child.calc = None
    return child


def _rmsd(a: Atoms, b: Atoms) -> float:
    return float(np.sqrt(((a.positions - b.positions) ** 2).sum(1).mean()))
