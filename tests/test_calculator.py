"""DistilledCalculator behaves like an ASE calculator should."""

import os

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import bulk, molecule
from ase.calculators.fd import calculate_numerical_stress
from ase.md.verlet import VelocityVerlet

from ase_distill import DistilledCalculator, StudentModel, model_card, save_checkpoint, size_config
from ase_distill.testing import randomize_readout


@pytest.fixture
def model():
    torch.manual_seed(0)
    return randomize_readout(StudentModel(size_config("tiny", species=(1, 6, 7, 8, 29))))


def test_properties_and_shapes(model):
    calc = DistilledCalculator(model)
    atoms = molecule("CH3CH2OH")
    atoms.calc = calc
    e = atoms.get_potential_energy()
    assert isinstance(e, float)
    assert atoms.get_forces().shape == (9, 3)
    assert atoms.get_potential_energies().shape == (9,)
    assert np.isclose(atoms.get_potential_energies().sum(), e)
    assert calc.get_property("free_energy", atoms) == e


def test_every_implemented_property_is_computed(model):
    """Each declared property comes back with ASE's shape (a periodic cell, so stress too)."""
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True)
    atoms.numbers[:] = [1, 6, 7, 8]
    calc = DistilledCalculator(model)
    shapes = {"energy": (), "free_energy": (), "forces": (4, 3), "stress": (6,), "energies": (4,)}
    assert set(calc.implemented_properties) == set(shapes)
    for prop in calc.implemented_properties:
        value = calc.get_property(prop, atoms)
        assert np.shape(value) == shapes[prop], prop
        assert np.all(np.isfinite(value)), prop


def test_stress_voigt_matches_numerical(model):
    atoms = bulk("Cu", "fcc", a=3.7) * (2, 1, 1)
    atoms.rattle(0.05, seed=1)
    atoms.calc = DistilledCalculator(model)
    stress = atoms.get_stress()
    assert stress.shape == (6,)
    numerical = calculate_numerical_stress(atoms, eps=1e-5)
    np.testing.assert_allclose(stress, numerical, atol=1e-6)  # central FD error < 1e-8


def test_mixed_pbc_slab(model):
    atoms = Atoms("C2H2", cell=[4.0, 4.5, 0.0], pbc=[True, True, False])
    atoms.positions = [[0, 0, 0], [1.4, 0, 0], [0, 1.1, 0.5], [1.4, 1.1, -0.5]]
    atoms.calc = DistilledCalculator(model)
    assert np.isfinite(atoms.get_potential_energy())
    assert np.isfinite(atoms.get_forces()).all()


def test_float32_close_to_float64(model):
    atoms = molecule("C6H6")
    f64 = DistilledCalculator(model, dtype=torch.float64).get_forces(atoms)
    f32 = DistilledCalculator(model, dtype=torch.float32).get_forces(atoms)
    assert np.abs(f64 - f32).max() < 1e-4  # fp32 rounding on O(1) eV/A forces


def test_compiled_equals_eager():
    """``compile=True`` gives the eager results, across atom counts and with stress.

    The shipped tiny in float64: its package is shared with the batch test (one compilation).
    """
    from ase_distill.testing import random_crystal

    eager = DistilledCalculator("tiny")
    compiled = DistilledCalculator("tiny", compile=True)
    crystal = random_crystal(eager.model, 6, seed=3)
    for atoms in (molecule("CH3CH2OH"), molecule("C6H6"), crystal):
        atoms.rattle(0.05, seed=2)
        props = ["energy", "forces"] + (["stress"] if atoms.pbc.all() else [])
        eager.calculate(atoms, props)
        compiled.calculate(atoms, props)
        for key in props:  # float64: only summation order may differ
            np.testing.assert_allclose(compiled.results[key], eager.results[key], atol=1e-10)


def test_compile_rejects_torchscript(model, tmp_path):
    from ase_distill import ConservativePotential

    scripted = torch.jit.script(ConservativePotential(model))
    with pytest.raises(ValueError, match="eager student"):
        DistilledCalculator(scripted, card={"architecture": model.config.to_dict()}, compile=True)


def test_from_checkpoint_roundtrip_bit_exact(model, tmp_path):
    save_checkpoint(model, tmp_path / "student", {"teacher": {"name": "test"}})
    loaded = DistilledCalculator.from_checkpoint(tmp_path / "student.pt")
    state = model.state_dict()
    original = {k: v.double() if v.is_floating_point() else v for k, v in state.items()}
    reloaded = loaded.model.state_dict()
    assert original.keys() == reloaded.keys()
    for key, value in original.items():
        assert torch.equal(value, reloaded[key]), key  # bit-exact (float32 -> float64 is exact)
    atoms = molecule("CH4")
    e1 = DistilledCalculator(model).get_potential_energy(atoms)
    e2 = loaded.get_potential_energy(atoms)
    assert e1 == e2
    assert loaded.card["teacher"] == {"name": "test"}


def test_no_global_state_changed(model):
    dtype = torch.get_default_dtype()
    env = dict(os.environ)
    threads = torch.get_num_threads()
    calc = DistilledCalculator(model, dtype=torch.float64)
    calc.get_forces(molecule("H2O"))
    assert torch.get_default_dtype() == dtype
    assert dict(os.environ) == env
    assert torch.get_num_threads() == threads
    assert torch.is_grad_enabled()


def test_works_under_no_grad(model):
    with torch.no_grad():
        forces = DistilledCalculator(model).get_forces(molecule("H2O"))
    assert np.abs(forces).sum() > 0


def test_results_cached_and_refreshed(model, monkeypatch):
    """Asking twice for unchanged atoms evaluates once; moving an atom evaluates again."""
    atoms = molecule("H2O")
    calc = DistilledCalculator(model)
    calls = []
    real = calc.potential.forward
    monkeypatch.setattr(calc.potential, "forward", lambda *a: calls.append(1) or real(*a))
    atoms.calc = calc
    e1 = atoms.get_potential_energy()
    atoms.get_forces()
    assert atoms.get_potential_energy() == e1 and len(calls) == 1
    atoms.positions[0] += 0.05
    assert atoms.get_potential_energy() != e1 and len(calls) == 2


def test_short_nve_runs(model):
    atoms = molecule("CH3CH2OH")
    atoms.calc = DistilledCalculator(model)
    VelocityVerlet(atoms, 0.5 * units.fs).run(5)
    assert np.isfinite(atoms.get_positions()).all()


def test_double_backward_for_force_training():
    from ase_distill import atoms_to_graph
    from ase_distill.model import ConservativePotential

    torch.manual_seed(0)
    m = StudentModel(size_config("ultra-tiny")).double()
    g = atoms_to_graph(molecule("CH3CH2OH"), m.cutoff, m.species)
    out = ConservativePotential(m).evaluate(g, forces=True, create_graph=True)
    loss = (out["forces"] ** 2).sum()
    loss.backward()
    grads = [p.grad for p in m.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_reuse_freed_memory_is_opt_in(model, monkeypatch):
    """Loading and using a student never applies the process-wide allocator setting."""
    import os

    from ase_distill import tuning

    def applied():
        raise AssertionError("the library applied reuse_freed_memory() on its own")

    monkeypatch.setattr(tuning, "reuse_freed_memory", applied)
    atoms = molecule("CH4")
    atoms.calc = DistilledCalculator("tiny")
    atoms.get_forces()
    assert not any(k.startswith("MALLOC_") for k in os.environ)


@pytest.mark.parametrize("env, expected", [(None, 1), ("1", 0)])
def test_the_program_tunes_its_own_process_unless_told_not_to(monkeypatch, env, expected):
    """The ``ase-distill`` program (not the library) keeps freed memory for reuse."""
    from ase_distill import tuning
    from training import cli

    calls = []
    monkeypatch.setattr(tuning, "reuse_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.setattr(cli, "main", lambda: 0)
    if env is None:
        monkeypatch.delenv("ASE_DISTILL_SYSTEM_MALLOC", raising=False)
    else:
        monkeypatch.setenv("ASE_DISTILL_SYSTEM_MALLOC", env)
    assert cli.console_main() == 0
    assert len(calls) == expected


def test_check_state_sees_every_change_the_student_depends_on():
    from ase.build import molecule

    calc = DistilledCalculator("ultra-tiny", compile=False)
    atoms = molecule("CH3CH2OH")
    atoms.calc = calc
    e0 = atoms.get_potential_energy()
    assert calc.check_state(atoms) == []
    moved = atoms.copy()
    moved.positions[0, 0] += 1e-9
    assert calc.check_state(moved) == ["positions"]
    boxed = atoms.copy()
    boxed.cell = [20, 20, 20]
    boxed.pbc = True
    assert calc.check_state(boxed) == ["cell", "pbc"]
    atoms.positions[0, 0] += 0.05
    assert atoms.get_potential_energy() != e0  # recomputed, not the cached value


def test_parameter_count_survives_the_frozen_inference_copy():
    """The calculator freezes its copy's weights; the model still has its parameters
    (`make demo` printed "0 params")."""
    calc = DistilledCalculator("tiny")
    assert calc.model.count_parameters() == model_card("tiny")["parameters"] > 0
