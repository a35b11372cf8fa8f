"""TorchScript and ONNX exports reproduce the eager students (energy and forces)."""

import numpy as np
import pytest
import torch
from ase.build import molecule

from ase_distill import SIZES, DistilledCalculator, StudentModel
from ase_distill.registry import load_student, shipped_students
from ase_distill.testing import random_crystal, randomize_readout


def _student(name):
    if name in shipped_students():
        return load_student(name)
    torch.manual_seed(0)
    model = randomize_readout(StudentModel(SIZES[name]))
    return model, {"name": name, "note": "random weights (student not shipped)"}


def _systems(model):
    crystal = random_crystal(model, 4, seed=3)
    # exported on benzene (12 atoms); evaluated on other atom counts and a periodic cell
    return {"ethanol": molecule("CH3CH2OH"), "urea-like": molecule("CH3CONH2"), "crystal": crystal}


def _assert_same(calc, reference, systems, tol, stress):
    """Energies and forces (and stress of periodic cells) of two calculators agree to ``tol``."""
    for label, atoms in systems.items():
        e, e_ref = calc.get_potential_energy(atoms), reference.get_potential_energy(atoms)
        np.testing.assert_allclose(e, e_ref, atol=tol, err_msg=label)
        f, f_ref = calc.get_forces(atoms), reference.get_forces(atoms)
        np.testing.assert_allclose(f, f_ref, atol=tol, err_msg=label)
        if stress and atoms.pbc.all():
            s, s_ref = calc.get_stress(atoms), reference.get_stress(atoms)
            np.testing.assert_allclose(s, s_ref, atol=tol, err_msg=label)


@pytest.mark.parametrize("name", list(SIZES))
def test_torchscript_matches_eager(name, tmp_path):
    from ase_distill.export import export_torchscript

    model, card = _student(name)
    path = export_torchscript(model, tmp_path / f"{name}.ts", card)
    scripted = DistilledCalculator.from_checkpoint(path)
    eager = DistilledCalculator(model, card=card)
    assert scripted.card["export"]["format"] == "torchscript"
    _assert_same(scripted, eager, _systems(model), tol=1e-8, stress=True)


@pytest.mark.parametrize("name", list(SIZES))
def test_onnx_matches_eager_fp64(name, tmp_path):
    pytest.importorskip("onnxruntime", reason="optional extra ase-distill[export]")
    pytest.importorskip("onnxscript", reason="optional extra ase-distill[export]")
    from ase_distill.export import OnnxCalculator, export_onnx

    model, card = _student(name)
    path = export_onnx(model, tmp_path / f"{name}.onnx", card, torch.float64)
    onnx_calc = OnnxCalculator(path)
    eager = DistilledCalculator(model, card=card)
    assert onnx_calc.card["export"]["format"] == "onnx"
    # float64 through onnxruntime agrees to ~1e-8 (kernel summation order); required 1e-5
    _assert_same(onnx_calc, eager, _systems(model), tol=1e-5, stress=False)


def test_onnx_fp32_within_stated_tolerance(tmp_path):
    pytest.importorskip("onnxruntime", reason="optional extra ase-distill[export]")
    pytest.importorskip("onnxscript", reason="optional extra ase-distill[export]")
    from ase_distill.export import OnnxCalculator, export_onnx

    model, card = _student("tiny")
    path = export_onnx(model, tmp_path / "tiny32.onnx", card, torch.float32)
    onnx_calc = OnnxCalculator(path)
    eager = DistilledCalculator(model, card=card, dtype=torch.float64)
    atoms = molecule("CH3CH2OH")
    # float32 rounding (~1e-7 relative) through 3 layers and a backward pass: 1e-4 eV/A on forces
    # of O(1) eV/A, 1e-4 eV/atom on energies
    np.testing.assert_allclose(onnx_calc.get_forces(atoms), eager.get_forces(atoms), atol=1e-4)
    assert abs(
        onnx_calc.get_potential_energy(atoms) - eager.get_potential_energy(atoms)
    ) < 1e-4 * len(atoms)


def test_onnx_file_through_from_checkpoint_is_redirected(tmp_path):
    path = tmp_path / "x.onnx"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="OnnxCalculator"):
        DistilledCalculator.from_checkpoint(path)


def test_export_cli(tmp_path):
    from training.cli import main

    if "ultra-tiny" not in shipped_students():
        pytest.skip("needs the shipped ultra-tiny student")
    out = tmp_path / "ut.ts"
    assert (
        main(["export", "--student", "ultra-tiny", "--format", "torchscript", "-o", str(out)]) == 0
    )
    calc = DistilledCalculator.from_checkpoint(out)
    assert np.isfinite(calc.get_forces(molecule("H2O"))).all()
