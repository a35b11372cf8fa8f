"""Benchmark systems, built in code with fixed seeds."""

import numpy as np
from ase import Atoms
from ase.build import molecule


def water_box(n_molecules: int, seed: int = 0, periodic: bool = True) -> Atoms:
    """Liquid-density water (~1 g/cm^3) on a jittered grid, random orientations."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(n_molecules ** (1 / 3)))
    spacing = 3.1
    base = molecule("H2O")
    base.positions -= base.get_center_of_mass()
    atoms = Atoms(cell=[side * spacing] * 3, pbc=periodic)
    sites = [(i, j, k) for i in range(side) for j in range(side) for k in range(side)]
    for i, j, k in sites[:n_molecules]:
        w = base.copy()
        w.rotate(rng.uniform(0, 360), rng.normal(size=3), center=(0, 0, 0))
        w.positions += (np.array([i, j, k]) + 0.5) * spacing + rng.normal(scale=0.1, size=3)
        atoms += w
    return atoms


def aspirin() -> Atoms:
    """Aspirin, 21 atoms (RDKit geometry)."""
    from training.structures import load_structure

    return load_structure("aspirin")[1]


SYSTEMS = {
    "aspirin-21": aspirin,
    "water-cluster-99": lambda: water_box(33, periodic=False),
    "water-box-99": lambda: water_box(33),
    "water-box-999": lambda: water_box(333),
    "water-box-2997": lambda: water_box(999),
}
