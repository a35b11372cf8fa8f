"""Benchmark systems, built in code with fixed seeds."""

import numpy as np
from ase import Atoms
from ase.build import molecule


def water_box(n_molecules: int, seed: int = 0, periodic: bool = True) -> Atoms:
    """Liquid water at 1.0 g/cm^3 (29.9 A^3 per molecule) on a jittered grid, random orientations.

    The grid spacing is chosen so that every size has the same density: cost per atom is then
    comparable across sizes (the scaling plot).
    """
    rng = np.random.default_rng(seed)
    side = int(np.ceil(n_molecules ** (1 / 3) - 1e-9))
    length = (n_molecules * 29.9) ** (1 / 3)
    spacing = length / side
    base = molecule("H2O")
    base.positions -= base.get_center_of_mass()
    atoms = Atoms(cell=[length] * 3, pbc=periodic)
    sites = [(i, j, k) for i in range(side) for j in range(side) for k in range(side)]
    chosen = sorted(rng.choice(len(sites), size=n_molecules, replace=False))
    for index in chosen:
        w = base.copy()
        w.rotate(rng.uniform(0, 360), rng.normal(size=3), center=(0, 0, 0))
        w.positions += (np.array(sites[index]) + 0.5) * spacing + rng.normal(scale=0.05, size=3)
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
    "water-box-333": lambda: water_box(111),
    "water-box-999": lambda: water_box(333),
    "water-box-2997": lambda: water_box(999),
    "water-box-9999": lambda: water_box(3333),
}
