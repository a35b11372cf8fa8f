"""Batched evaluation and the batched MD driver reproduce separate ASE calls (float64)."""

import numpy as np
import pytest
from ase import units
from ase.build import molecule
from ase.md.verlet import VelocityVerlet

from ase_distill import DistilledCalculator
from ase_distill.batch import BatchedMD, BatchEvaluator
from ase_distill.testing import random_crystal

TOL = 1e-10  # float64: the batched graph is the union of the single graphs


def _mixed(model):
    return [
        molecule("CH3CH2OH"),
        random_crystal(model, 5, seed=1),
        molecule("C6H6"),
        random_crystal(model, 3, seed=2),
        molecule("H2O"),
    ]


def test_batched_evaluation_equals_separate_calls():
    evaluator = BatchEvaluator("tiny")
    calc = DistilledCalculator("tiny")
    structures = _mixed(evaluator.model)
    for atoms, row in zip(structures, evaluator.evaluate(structures, stress=True)):
        atoms.calc = calc
        assert abs(row["energy"] - atoms.get_potential_energy()) <= TOL
        np.testing.assert_allclose(row["forces"], atoms.get_forces(), rtol=0, atol=TOL)
        if atoms.pbc.all():
            full = atoms.get_stress(voigt=False)
            np.testing.assert_allclose(row["stress"], full, rtol=0, atol=TOL)
        else:
            assert "stress" not in row


def test_batched_nve_equals_ase_velocity_verlet():
    evaluator = BatchEvaluator("tiny")
    rng = np.random.default_rng(0)
    systems = [molecule("CH3CH2OH"), molecule("CH3CONH2"), molecule("C6H6")]
    for atoms in systems:
        atoms.set_momenta(rng.normal(scale=0.3, size=(len(atoms), 3)))
    md = BatchedMD(systems, evaluator, timestep_fs=0.5)
    md.run(20)
    for atoms, batched in zip(systems, md.atoms()):
        atoms.calc = DistilledCalculator("tiny")
        VelocityVerlet(atoms, 0.5 * units.fs).run(20)
        np.testing.assert_allclose(batched.positions, atoms.positions, rtol=0, atol=TOL)
        np.testing.assert_allclose(batched.get_momenta(), atoms.get_momenta(), rtol=0, atol=TOL)


def test_batched_langevin_thermalises_each_system_independently():
    evaluator = BatchEvaluator("tiny")
    systems = [molecule("CH3CH2OH") for _ in range(4)]
    md = BatchedMD(systems, evaluator, 0.5, "langevin", 600.0, friction_per_fs=0.05, seed=3)
    temps = []
    for _ in range(30):
        md.run(10)
        temps.append(md.temperatures())
    mean = np.mean(temps[10:])
    assert 400 < mean < 800, mean  # 9 atoms: large fluctuations; the thermostat pulls to 600 K
    alone = BatchedMD(systems[:1], evaluator, 0.5, "langevin", 600.0, 0.05, seed=3)
    alone.run(20)
    again = BatchedMD(systems, evaluator, 0.5, "langevin", 600.0, 0.05, seed=3)
    again.run(20)  # system 0 uses the same random stream with or without the others
    np.testing.assert_allclose(again.atoms()[0].positions, alone.atoms()[0].positions, atol=TOL)


def test_bad_md_options():
    evaluator = BatchEvaluator("ultra-tiny")
    with pytest.raises(ValueError, match="nve' or 'langevin"):
        BatchedMD([molecule("H2O")], evaluator, ensemble="npt")
    with pytest.raises(ValueError, match="timestep_fs must be > 0"):
        BatchedMD([molecule("H2O")], evaluator, timestep_fs=0)


def test_compiled_batch_equals_separate_calls():
    """``compile=True``: one package call for molecules and cells of different sizes (float64)."""
    evaluator = BatchEvaluator("tiny", compile=True)
    calc = DistilledCalculator("tiny")
    structures = _mixed(evaluator.model)
    for atoms, row in zip(structures, evaluator.evaluate(structures)):
        atoms.calc = calc
        assert abs(row["energy"] - atoms.get_potential_energy()) <= TOL
        np.testing.assert_allclose(row["forces"], atoms.get_forces(), rtol=0, atol=TOL)
