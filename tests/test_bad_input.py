"""Every bad input gets a clear error that names the problem and the fix."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule

from ase_distill import DistilledCalculator, StudentModel, save_checkpoint, size_config
from ase_distill.checkpoint import CheckpointError


@pytest.fixture
def calc():
    torch.manual_seed(0)
    return DistilledCalculator(StudentModel(size_config("ultra-tiny")))


def test_unknown_element_lists_known(calc):
    atoms = molecule("CH3Cl")
    with pytest.raises(ValueError, match=r"Cl.*not supported.*H, C, N, O"):
        calc.get_potential_energy(atoms)


def test_empty_atoms(calc):
    with pytest.raises(ValueError, match="empty"):
        calc.get_potential_energy(Atoms())


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_positions(calc, bad):
    atoms = molecule("H2O")
    atoms.positions[1, 0] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        calc.get_forces(atoms)


def test_atoms_too_close(calc):
    atoms = Atoms("OH", positions=[[0, 0, 0], [0.1, 0, 0]])
    with pytest.raises(ValueError, match="closer than the minimum"):
        calc.get_potential_energy(atoms)


def test_overlapping_atoms(calc):
    atoms = Atoms("OH", positions=[[0, 0, 0], [0, 0, 0]])
    with pytest.raises(ValueError, match="closer than the minimum"):
        calc.get_potential_energy(atoms)


def test_degenerate_periodic_cell(calc):
    atoms = molecule("H2O", vacuum=3.0)
    atoms.pbc = True
    atoms.cell[2] = [0, 0, 0]
    with pytest.raises(ValueError, match="zero-length cell vector"):
        calc.get_potential_energy(atoms)
    atoms.set_cell([[5, 0, 0], [0, 5, 0], [5, 5, 0]])
    with pytest.raises(ValueError, match="degenerate"):
        calc.get_potential_energy(atoms)


def test_unknown_model_name_lists_known():
    with pytest.raises(ValueError, match=r"Unknown student 'huge'.*original.*tiny.*ultra-tiny"):
        DistilledCalculator("huge")


def test_stress_on_molecule_is_clear(calc):
    from ase.calculators.calculator import PropertyNotImplementedError

    with pytest.raises(PropertyNotImplementedError, match="periodic"):
        calc.get_stress(molecule("H2O"))


def test_bad_dtype():
    with pytest.raises(ValueError, match="dtype"):
        DistilledCalculator(StudentModel(size_config("ultra-tiny")), dtype=torch.int64)


def _saved(tmp_path):
    torch.manual_seed(0)
    model = StudentModel(size_config("ultra-tiny"))
    save_checkpoint(model, tmp_path / "m")
    return tmp_path / "m"


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        DistilledCalculator.from_checkpoint(tmp_path / "nothing.pt")


def test_missing_weights_file(tmp_path):
    stem = _saved(tmp_path)
    stem.with_suffix(".pt").unlink()
    with pytest.raises(CheckpointError, match="Weights file .* not found"):
        DistilledCalculator.from_checkpoint(stem)


def test_tampered_weights_refused(tmp_path):
    stem = _saved(tmp_path)
    state = torch.load(stem.with_suffix(".pt"), weights_only=True)
    key = next(iter(k for k, v in state.items() if v.is_floating_point()))
    state[key] = state[key] + 1e-3
    torch.save(state, stem.with_suffix(".pt"))
    with pytest.raises(CheckpointError, match="modified or corrupted"):
        DistilledCalculator.from_checkpoint(stem)


def test_corrupted_card(tmp_path):
    stem = _saved(tmp_path)
    stem.with_suffix(".json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        DistilledCalculator.from_checkpoint(stem)


def test_weights_not_matching_architecture(tmp_path):
    import json

    from ase_distill.checkpoint import integrity_digest

    stem = _saved(tmp_path)
    card = json.loads(stem.with_suffix(".json").read_text())
    card["architecture"]["features"] = 32  # a consistent hash: the weights themselves misfit
    card["sha256"] = integrity_digest(stem.with_suffix(".pt").read_bytes(), card["architecture"])
    stem.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="Could not load weights"):
        DistilledCalculator.from_checkpoint(stem)


def test_unknown_architecture_key():
    from ase_distill import StudentConfig

    with pytest.raises(ValueError, match="Unknown architecture keys"):
        StudentConfig.from_dict({"species": [1], "feetures": 3})
