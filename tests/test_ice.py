"""Ice Ih seeds for the water students: the ice rules hold for every proton arrangement."""

import numpy as np
import pytest
from ase.neighborlist import neighbor_list

from training.water import ice_ih


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ice_rules_density_and_geometry(seed):
    ice = ice_ih((2, 2, 2), seed=seed)
    assert ice.get_chemical_formula() == "H64O32"
    first, second, dist = neighbor_list("ijd", ice, 1.2)  # covalent O-H only
    oxygen = ice.numbers == 8
    bonded = np.bincount(first, minlength=len(ice))
    assert (bonded[oxygen] == 2).all()  # two hydrogens per oxygen
    assert (bonded[~oxygen] == 1).all()  # one oxygen per hydrogen: one H per hydrogen bond
    grams = 32 * 18.015 / 6.02214076e23
    assert grams / (ice.get_volume() * 1e-24) == pytest.approx(0.93, abs=0.01)  # ice Ih
    # waters are laid out O, H, H so that per-molecule tools (TIP3P, RDFs) apply
    assert (ice.numbers.reshape(-1, 3) == [8, 1, 1]).all()
    o, h = np.arange(0, 96, 3), np.arange(1, 96, 3)
    assert np.allclose(ice.get_distances(o[0], [h[0], h[0] + 1], mic=True), 0.98)


def test_seeds_give_different_proton_arrangements():
    a, b = ice_ih(seed=0), ice_ih(seed=1)
    assert not np.allclose(a.positions, b.positions)


@pytest.mark.parametrize("repeat", [(1, 1, 1), (1, 1, 2)])
def test_small_cells_bond_through_their_images(repeat):
    ice = ice_ih(repeat, seed=3)
    first = neighbor_list("i", ice, 1.2)
    assert (np.bincount(first, minlength=len(ice)) == np.tile([2, 1, 1], len(ice) // 3)).all()
