"""A committee's mean and spread, and its out-of-domain warning."""

import warnings

import numpy as np
import pytest
from ase.build import molecule

from ase_distill import DistilledCalculator
from ase_distill.committee import CommitteeCalculator, OutOfDomainWarning


def test_mean_and_spread_of_the_members():
    atoms = molecule("CH3CH2OH")
    committee = CommitteeCalculator(["tiny", "ultra-tiny"], warn_force_uncertainty=None)
    committee.calculate(atoms, ["energy", "forces"])
    members = [DistilledCalculator(n) for n in ("tiny", "ultra-tiny")]
    energies = [m.get_potential_energy(atoms) for m in members]
    forces = np.array([m.get_forces(atoms) for m in members])
    assert committee.results["energy"] == pytest.approx(np.mean(energies), abs=1e-10)
    np.testing.assert_allclose(committee.results["forces"], forces.mean(0), atol=1e-10)
    assert committee.results["energy_uncertainty"] == pytest.approx(np.std(energies), abs=1e-10)
    expected = np.linalg.norm(forces.std(0), axis=1)
    np.testing.assert_allclose(committee.results["forces_uncertainty"], expected, atol=1e-10)
    assert committee.results["forces_uncertainty"].shape == (len(atoms),)


def test_identical_members_have_zero_uncertainty():
    committee = CommitteeCalculator(["tiny", "tiny"])
    atoms = molecule("C6H6")
    committee.calculate(atoms, ["energy", "forces"])
    assert committee.results["energy_uncertainty"] == 0.0
    assert np.all(committee.results["forces_uncertainty"] == 0.0)


def test_warns_once_when_members_disagree():
    """Stretched far off equilibrium, the members disagree: one warning, then silence."""
    atoms = molecule("CH3CH2OH")
    atoms.positions *= 1.35
    committee = CommitteeCalculator.from_family("chno", warn_force_uncertainty=0.01)
    with pytest.warns(OutOfDomainWarning, match="outside the students' training domain"):
        committee.calculate(atoms, ["energy", "forces"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        atoms.positions *= 1.01
        committee.calculate(atoms, ["energy", "forces"])


def test_bad_committees_are_refused():
    with pytest.raises(ValueError, match="at least 2"):
        CommitteeCalculator(["tiny"])
    with pytest.raises(ValueError, match="different elements"):
        CommitteeCalculator(["tiny", "water-tiny"])
    with pytest.raises(ValueError, match="Unknown family"):
        CommitteeCalculator.from_family("argon")
    with pytest.raises(ValueError, match="must be > 0"):
        CommitteeCalculator(["tiny", "ultra-tiny"], warn_force_uncertainty=0)
