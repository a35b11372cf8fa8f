"""vesin-based neighbour list vs ASE's reference implementation."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.neighborlist import neighbor_list as ase_neighbor_list

from ase_distill.neighbors import neighbor_list


def _pairs(i, j, s):
    return sorted(zip(i.tolist(), j.tolist(), map(tuple, np.asarray(s).tolist())))


def _skewed(rng):
    cell = np.array([[3.1, 0.0, 0.0], [1.4, 2.9, 0.0], [0.8, -1.1, 3.3]])
    atoms = Atoms("CHNO", cell=cell, pbc=True)
    atoms.set_scaled_positions(rng.random((4, 3)))
    return atoms


def _mixed(rng):
    atoms = Atoms("C2H2", cell=[4.0, 4.5, 0.0], pbc=[True, True, False])
    atoms.positions = rng.random((4, 3)) * [4.0, 4.5, 3.0]
    return atoms


CASES = {
    "ethanol": lambda rng: molecule("CH3CH2OH"),
    "benzene": lambda rng: molecule("C6H6"),
    "fcc-cu": lambda rng: bulk("Cu", "fcc", a=3.6),  # 1-atom cell, far smaller than cutoff
    "fcc-cu-cubic": lambda rng: bulk("Cu", "fcc", a=3.6, cubic=True),
    "skewed": _skewed,
    "mixed-pbc": _mixed,
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("cutoff", [2.5, 5.0])
def test_matches_ase(name, cutoff):
    atoms = CASES[name](np.random.default_rng(0))
    i, j, s = neighbor_list(atoms, cutoff, min_distance=None)
    ai, aj, a_s = ase_neighbor_list("ijS", atoms, cutoff)
    assert _pairs(i, j, s) == _pairs(ai, aj, a_s)
    assert np.all(np.diff(i) >= 0), "edges must be sorted by receiver"


def test_small_cell_has_many_images():
    atoms = bulk("Cu", "fcc", a=3.6)
    i, j, s = neighbor_list(atoms, 5.0, min_distance=None)
    assert len(i) > 12  # first and second shells through periodic images of one atom
    assert np.all(i == 0) and np.all(j == 0)
