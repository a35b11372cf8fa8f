"""Device-resident MD: the torch cell list equals vesin's list, and DeviceMD reproduces ASE's
velocity Verlet with DistilledCalculator (float64, CPU; the GPU run is a benchmark)."""

import numpy as np
import pytest
import torch
from ase import units
from ase.build import molecule
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet

from ase_distill import DistilledCalculator
from ase_distill.device_md import DeviceMD, DeviceMDError, cell_list_pairs
from ase_distill.neighbors import neighbor_list
from training.water import water_box

TOL = 1e-10  # float64; the same graph up to edge order, so only summation order differs


def _pairs(i, j, shifts) -> set:
    rows = np.asarray(shifts).astype(int).tolist()
    return set(zip(np.asarray(i).tolist(), np.asarray(j).tolist(), map(tuple, rows)))


def _sheared(atoms):
    cell = atoms.cell[:].copy()
    cell[1, 0] += 0.2 * cell[0, 0]
    cell[2, 1] -= 0.15 * cell[1, 1]
    atoms.set_cell(cell, scale_atoms=True)
    return atoms


@pytest.mark.parametrize(("n", "shear"), [(32, False), (32, True), (150, True)])
def test_cell_list_equals_vesin(n, shear):
    """One bin per axis (32 waters: a 9.9 A box, radius 5.5 A) and several bins, triclinic."""
    atoms = water_box(n, seed=1)
    atoms = _sheared(atoms) if shear else atoms
    atoms.wrap()
    edges, shifts = cell_list_pairs(torch.tensor(atoms.positions), torch.tensor(atoms.cell[:]), 5.5)
    assert bool((edges[0][1:] >= edges[0][:-1]).all())  # sorted by receiver (CSR)
    assert _pairs(edges[0], edges[1], shifts) == _pairs(*neighbor_list(atoms, 5.5, None))


def test_cell_list_refuses_a_cell_narrower_than_the_radius():
    atoms = water_box(4)  # a 4.9 A box
    with pytest.raises(DeviceMDError, match="larger supercell"):
        cell_list_pairs(torch.tensor(atoms.positions), torch.tensor(atoms.cell[:]), 5.5)


def _thermal_box(seed=3):
    atoms = water_box(32, seed=seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(seed))
    return atoms


def test_nve_reproduces_ase_velocity_verlet_across_rebuilds():
    atoms = _thermal_box()
    before = atoms.positions.copy()
    reference = atoms.copy()
    reference.calc = DistilledCalculator("tiny")
    dyn = VelocityVerlet(reference, 0.5 * units.fs)
    md = DeviceMD(atoms, "tiny", dtype=torch.float64, skin=0.1)
    dyn.run(20)
    md.run(20)
    assert md.rebuilds > 1  # the wrapped positions and new lists must not change the path
    result = md.get_atoms()
    np.testing.assert_allclose(result.positions, reference.positions, rtol=0, atol=TOL)
    np.testing.assert_allclose(result.get_momenta(), reference.get_momenta(), rtol=0, atol=TOL)
    assert abs(result.info["energy"] - reference.get_potential_energy()) < TOL * len(atoms)
    np.testing.assert_array_equal(atoms.positions, before)  # the input is untouched


def test_padded_edges_change_nothing():
    """The compiled path pads the list with far images of the last atom: zero contribution."""
    md = DeviceMD(_thermal_box(), "tiny", dtype=torch.float64)
    energy, forces = md._evaluate()
    md._pad()
    assert md.edge_index.shape[1] == md.capacity
    md.offsets = None  # the compiled graph sums without CSR offsets
    padded_energy, padded_forces = md._evaluate()
    assert abs(float(padded_energy - energy)) < TOL
    assert float((padded_forces - forces).abs().max()) < TOL


def test_langevin_is_reproducible_and_thermalises():
    runs = []
    for _ in range(2):
        md = DeviceMD(
            _thermal_box(), "tiny", dtype=torch.float64, ensemble="langevin",
            temperature_K=300, friction_per_fs=0.05, seed=5,
        )  # fmt: skip
        md.run(8)
        runs.append(md.get_atoms().positions)
    np.testing.assert_array_equal(runs[0], runs[1])
    assert 50 < md.temperature() < 2000


def test_bad_input_is_refused_with_a_reason():
    with pytest.raises(DeviceMDError, match="periodic"):
        DeviceMD(molecule("H2O"), "tiny")
    with pytest.raises(DeviceMDError, match="nve"):
        DeviceMD(_thermal_box(), "tiny", ensemble="npt")
    with pytest.raises(DeviceMDError, match="skin"):
        DeviceMD(_thermal_box(), "tiny", skin=-1)
