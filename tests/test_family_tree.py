"""Rattle-relax family trees with a cheap teacher (EMT)."""

import numpy as np
import pytest
from ase.build import molecule
from ase.calculators.emt import EMT

from training.family_tree import TreeSettings, choose_parent, grow_tree


@pytest.fixture(scope="module")
def tree():
    return grow_tree(molecule("CH3CH2OH"), EMT(), TreeSettings(children=12), seed=1)


def test_tree_has_the_children_asked_with_their_lineage(tree):
    assert len(tree) == 13 and tree[0].info["generation"] == 0
    for child in tree[1:]:
        parent = tree[child.info["parent"]]
        assert child.info["generation"] == parent.info["generation"] + 1
    assert max(c.info["generation"] for c in tree) >= 2  # the tree grows, not only a star


def test_children_pass_the_rejection_rules(tree):
    s = TreeSettings()
    for k, child in enumerate(tree[1:], start=1):
        d = child.get_all_distances()[np.triu_indices(len(child), 1)]
        assert d.min() >= s.min_distance
        child.calc = EMT()
        assert np.linalg.norm(child.get_forces(), axis=1).max() <= s.max_force
        assert child.get_potential_energy() == pytest.approx(child.info["energy"])
        for other in tree[:k]:
            assert np.sqrt(((child.positions - other.positions) ** 2).sum(1).mean()) >= s.min_rmsd


def test_same_seed_same_tree(tree):
    again = grow_tree(molecule("CH3CH2OH"), EMT(), TreeSettings(children=12), seed=1)
    for a, b in zip(tree, again):
        np.testing.assert_array_equal(a.positions, b.positions)


def test_parent_choice_weights():
    rng = np.random.default_rng(0)
    energies, generations = np.array([0.0, 5.0]), np.array([0.0, 0.0])
    picks = [choose_parent(energies, generations, 1.0, 0.025, rng) for _ in range(200)]
    assert set(picks) == {0}  # pure Boltzmann: the 5 eV member is never chosen
    generations = np.array([0.0, 9.0])
    picks = [choose_parent(energies, generations, 0.0, 0.025, rng) for _ in range(400)]
    assert 0.8 < np.mean(picks) < 0.97  # pure age: the generation-9 member 10 times in 11


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="sigma_range"):
        TreeSettings(sigma_range=(0.2, 0.1))
    with pytest.raises(ValueError, match="beta"):
        TreeSettings(beta=1.5)
    with pytest.raises(ValueError, match="No acceptable child"):
        grow_tree(molecule("H2O"), EMT(), TreeSettings(children=2, max_force=1e-9), seed=0)
