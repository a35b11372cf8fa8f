"""metatomic export: metatomic's ASE calculator and i-PI's metatomic driver reproduce the student.

Float64 throughout; the tolerance 1e-8 (eV, eV/A, eV/A^3) leaves room only for summation order
(the two paths sum the same per-atom energies and differentiate the same graph).
"""

import warnings

import numpy as np
import pytest
from ase import units
from ase.build import molecule
from ase.md.verlet import VelocityVerlet

from ase_distill import DistilledCalculator, load_student, shipped_students
from ase_distill.testing import random_crystal, random_molecule

pytest.importorskip("metatomic.torch", reason="optional extra ase-distill[metatomic]")
metatomic_ase = pytest.importorskip("metatomic_ase")

TOL = 1e-8
NAMES = shipped_students()


@pytest.fixture(scope="module", params=NAMES)
def exported(request, tmp_path_factory):
    from ase_distill.export_metatomic import export_metatomic

    model, card = load_student(request.param)
    path = tmp_path_factory.mktemp("mta") / f"{request.param}.pt"
    export_metatomic(model, path, card)
    return request.param, path


def model_species(name):
    return list(DistilledCalculator(name).species)


def _metatomic_calc(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return metatomic_ase.MetatomicCalculator(str(path), device="cpu")


def _structures(model):
    """Molecules of the student's own elements and a periodic cell."""
    box = random_crystal(model, 6, seed=2).repeat((2, 1, 1))
    if set(model.species) >= {1, 6, 7, 8}:
        return {"ethanol": molecule("CH3CH2OH"), "benzene": molecule("C6H6"), "crystal": box}
    return {"cluster": random_molecule(model, 7, seed=3), "crystal": box}


def _molecule(name):
    return next(iter(_structures(DistilledCalculator(name).model).values()))


def test_metatomic_ase_matches_distilled_calculator(exported):
    name, path = exported
    reference, theirs = DistilledCalculator(name), _metatomic_calc(path)
    for label, atoms in _structures(reference.model).items():
        a, b = atoms.copy(), atoms.copy()
        a.calc, b.calc = reference, theirs
        assert abs(a.get_potential_energy() - b.get_potential_energy()) <= TOL, label
        np.testing.assert_allclose(a.get_forces(), b.get_forces(), rtol=0, atol=TOL)
        if atoms.pbc.all():
            np.testing.assert_allclose(a.get_stress(), b.get_stress(), rtol=0, atol=TOL)


def test_per_atom_energies(exported):
    name, path = exported
    atoms = _molecule(name)
    atoms.calc = DistilledCalculator(name)
    ours = atoms.get_potential_energies()
    atoms.calc = _metatomic_calc(path)
    np.testing.assert_allclose(atoms.get_potential_energies(), ours, rtol=0, atol=TOL)


def test_metadata_carries_the_card(exported):
    import json

    from metatomic.torch import load_atomistic_model

    name, path = exported
    model = load_atomistic_model(str(path))
    card = json.loads(model.metadata().extra["model_card"])
    caps = model.capabilities()
    assert card["name"] == name and card["sha256"]
    assert caps.atomic_types == model_species(name) and caps.length_unit == "angstrom"
    assert caps.interaction_range == pytest.approx(card["cutoff"] * 3)
    assert caps.outputs["energy"].unit == "eV"


def test_nve_100_steps_same_energies(exported):
    name, path = exported
    runs = {}
    for label, calc in (("ours", DistilledCalculator(name)), ("metatomic", _metatomic_calc(path))):
        atoms = _molecule(name)
        atoms.set_momenta(np.random.default_rng(0).normal(scale=0.3, size=(len(atoms), 3)))
        atoms.calc = calc
        energies = []
        dyn = VelocityVerlet(atoms, 0.5 * units.fs)
        dyn.attach(lambda a=atoms, e=energies: e.append(a.get_total_energy()), interval=10)
        dyn.run(100)
        runs[label] = np.array(energies)
    np.testing.assert_allclose(runs["metatomic"], runs["ours"], rtol=0, atol=1e-7)


def test_ipi_metatomic_driver_same_energy(exported, tmp_path):
    pytest.importorskip("ipi")
    from ase.io import write
    from ipi.pes.metatomic import MetatomicDriver
    from ipi.utils.units import unit_to_internal, unit_to_user

    name, path = exported
    atoms = _molecule(name)
    atoms.center(vacuum=6.0)
    write(tmp_path / "template.xyz", atoms)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        driver = MetatomicDriver(str(tmp_path / "template.xyz"), str(path))
    cell = unit_to_internal("length", "angstrom", atoms.cell[:].T)
    positions = unit_to_internal("length", "angstrom", atoms.positions)
    energy, forces, _, _ = driver.compute_structure(cell, positions)
    atoms.calc = DistilledCalculator(name)
    assert abs(unit_to_user("energy", "electronvolt", energy) - atoms.get_potential_energy()) <= TOL


def test_export_cli_metatomic(tmp_path):
    from training.cli import main

    out = tmp_path / "tiny.pt"
    assert main(["export", "--student", "tiny", "--format", "metatomic", "-o", str(out)]) == 0
    atoms = molecule("H2O")
    atoms.calc = _metatomic_calc(out)
    assert np.isfinite(atoms.get_potential_energy())


def test_committee_export_gives_mean_energy_and_warns_on_disagreement(tmp_path):
    """A committee file: metatomic-ase returns the members' mean and warns off-domain."""
    from ase_distill.committee import CommitteeCalculator
    from ase_distill.export_metatomic import committee_model

    names = ["tiny", "ultra-tiny"]
    models = [load_student(n)[0] for n in names]
    path = tmp_path / "committee.pt"
    committee_model(models, names).save(str(path))
    atoms = molecule("CH3CH2OH")
    reference = CommitteeCalculator(names, warn_force_uncertainty=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calc = metatomic_ase.MetatomicCalculator(str(path), uncertainty_threshold=10.0)
    atoms.calc = calc
    expected = reference.get_potential_energy(atoms)
    assert atoms.get_potential_energy() == pytest.approx(expected, abs=TOL)
    np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(atoms), atol=TOL)
    stretched = atoms.copy()
    stretched.positions *= 1.35
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        strict = metatomic_ase.MetatomicCalculator(str(path), uncertainty_threshold=1e-4)
    stretched.calc = strict
    with pytest.warns(UserWarning, match="uncertainties are larger than the threshold"):
        stretched.get_potential_energy()


def test_committee_export_cli(tmp_path):
    from training.cli import main

    path = tmp_path / "c.pt"
    args = ["export", "--format", "metatomic", "--committee", "tiny", "ultra-tiny", "-o", str(path)]
    assert main(args) == 0 and path.exists()
    assert main(["export", "--format", "onnx", "--committee", "tiny", "-o", str(path)]) == 2
