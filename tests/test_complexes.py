"""Non-covalent complexes: contacts as asked, no overlaps, bad input refused."""

import numpy as np
import pytest
from ase.build import molecule

from training.complexes import closest_contact, dimer, microsolvate, stacked_dimer


@pytest.mark.parametrize("separation", [1.8, 2.5, 4.0])
def test_dimer_contact_is_the_requested_separation(separation):
    a, b = molecule("CH3CH2OH"), molecule("H2O")
    pair = dimer(a, b, separation, seed=3)
    assert len(pair) == len(a) + len(b)
    assert closest_contact(pair[: len(a)], pair[len(a) :]) == pytest.approx(separation, abs=1e-6)
    np.testing.assert_allclose(pair.positions[: len(a)], a.positions)  # a stays where it was


def test_stacked_benzenes_are_parallel_at_the_gap():
    a = molecule("C6H6")
    pair = stacked_dimer(a, molecule("C6H6"), gap=3.6, seed=1)
    top = pair[len(a) :].positions
    normal = np.linalg.svd(a.positions - a.positions.mean(0))[2][-1]
    heights = (top - a.positions.mean(0)) @ normal
    np.testing.assert_allclose(np.abs(heights), 3.6, atol=1e-6)


def test_microsolvated_waters_touch_but_never_overlap():
    solute = molecule("CH3CONH2")
    cluster = microsolvate(solute, 6, seed=2)
    assert len(cluster) == len(solute) + 18
    for k in range(6):
        start = len(solute) + 3 * k
        water, rest = cluster[start : start + 3], cluster[:start]
        assert 1.8 - 1e-6 <= closest_contact(rest, water) <= 2.6 + 1e-6


def test_bad_complexes_are_refused():
    with pytest.raises(ValueError, match="separation must be"):
        dimer(molecule("H2O"), molecule("H2O"), 0.5)
    with pytest.raises(ValueError, match="n_waters"):
        microsolvate(molecule("H2O"), 0)
    with pytest.raises(ValueError, match="stacking gap"):
        stacked_dimer(molecule("C6H6"), molecule("C6H6"), 1.0)
