"""The pair-force table (PairTable) and its fit to a student's net-force residual."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from ase.stress import full_3x3_to_voigt_6_stress

from ase_distill import testing as T
from ase_distill.checkpoint import load_checkpoint, save_checkpoint
from ase_distill.model import StudentConfig, StudentModel
from training.generate import ENERGY_KEY, FORCES_KEY, STRESS_KEY
from training.pair_correction import PairFitError, fit_table, with_table

WATER = StudentConfig(species=(1, 8), cutoff=5.0, features=8, interactions=1, radial_basis=4)


def _student(seed=0):
    torch.manual_seed(seed)
    return T.randomize_readout(StudentModel(WATER).double(), seed=seed).eval()


def _table(knots=12):
    r = np.linspace(0, 3, knots)
    return 0.2 * np.sin(2 * r) * np.exp(-r)  # eV/A: smooth, both signs


def _water_boxes(n_frames, seed=0):
    """Periodic boxes of 8 randomly placed and rotated water molecules (no close contacts)."""
    rng = np.random.default_rng(seed)
    frames = []
    while len(frames) < n_frames:
        box = Atoms(cell=[7.0] * 3, pbc=True)
        for c in rng.uniform(0, 7.0, (8, 3)):
            w = molecule("H2O")
            w.rotate(rng.uniform(0, 360), rng.normal(size=3), center="COP")
            w.translate(c - w.get_center_of_mass())
            box += w
        o = box.numbers == 8
        d = box.get_all_distances(mic=True)[np.ix_(o, o)]
        if d[np.triu_indices(8, 1)].min() > 2.3:
            box.wrap()
            frames.append(box)
    return frames


def _label(frames, teacher):
    for f in frames:
        out = T.evaluate(teacher, f, stress=True)
        f.info[ENERGY_KEY] = float(out["energy"][0])
        f.arrays[FORCES_KEY] = out["forces"]
        f.info[STRESS_KEY] = full_3x3_to_voigt_6_stress(out["stress"][0])
    return frames


def test_a_student_with_a_pair_table_passes_all_checks():
    model = with_table(_student(), (8, 8), 2.2, _table())
    model.pair.table[0, 1] = model.pair.table[1, 0] = 0.3 * model.pair.table[1, 1]
    T.run_all_checks(model)


def test_pair_energy_is_minus_the_integral_of_its_force():
    student = _student()
    model = with_table(student, (8, 8), 2.2, _table())
    for r in (2.0, 2.7, 3.45, 4.99, 5.3):
        dimer = Atoms("OO", positions=[[0, 0, 0], [r, 0, 0]])
        added = T.evaluate(model, dimer)["energy"][0] - T.evaluate(student, dimer)["energy"][0]
        grid = torch.linspace(max(r, 2.2), 5.0, 20001, dtype=torch.float64)
        g = model.pair.force_basis(grid).numpy() @ _table()
        expected = -np.trapezoid(g, grid.numpy()) if r < 5 else 0.0
        # trapezoid on a grid of at most 1.4e-4 A of a smooth g: error ~1e-9 eV
        assert added == pytest.approx(expected, abs=1e-8)


def test_the_fit_recovers_a_known_table():
    student = _student()
    teacher = with_table(student, (8, 8), 2.2, _table())
    frames = _label(_water_boxes(12), teacher)
    coefficients, variance = fit_table(
        student, frames, (8, 8), 2.2, 12, ridge=1e-9, stress_weight=1.0
    )
    r = torch.linspace(2.6, 4.8, 50, dtype=torch.float64)
    basis = teacher.pair.force_basis(r).numpy()
    # the teacher differs from the student only by the table: its force is recovered to
    # float64 round-off wherever pairs were sampled
    np.testing.assert_allclose(basis @ coefficients, basis @ _table(), atol=1e-6)
    # the design's forces and virials are the model's: both residuals vanish
    assert variance["net_force_after"] < 1e-10 * variance["net_force_before"]
    assert variance["virial_after"] < 1e-10 * variance["virial_before"]


def test_the_fit_refuses_pairs_inside_molecules():
    frames = _label(_water_boxes(1), _student())
    with pytest.raises(PairFitError, match="within one molecule"):
        fit_table(_student(), frames, (1, 1), 1.0, 8, ridge=1.0)


def test_a_pair_table_round_trips_through_a_checkpoint(tmp_path):
    model = with_table(_student(), (8, 8), 2.2, _table())
    save_checkpoint(model, tmp_path / "paired", {"note": "test"})
    loaded, card = load_checkpoint(tmp_path / "paired")
    assert card["architecture"]["pair_knots"] == 12
    box = _water_boxes(1)[0]
    np.testing.assert_allclose(T.evaluate(loaded, box)["forces"], T.evaluate(model, box)["forces"])


def test_a_pair_table_exports_to_torchscript(tmp_path):
    from ase_distill import DistilledCalculator
    from ase_distill.export import export_torchscript

    model = with_table(_student(), (8, 8), 2.2, _table())
    path = export_torchscript(model, tmp_path / "paired.ts", {"name": "paired"})
    box = _water_boxes(1, seed=3)[0]
    scripted, eager = DistilledCalculator.from_checkpoint(path), DistilledCalculator(model)
    np.testing.assert_allclose(scripted.get_forces(box), eager.get_forces(box), atol=1e-8)
    np.testing.assert_allclose(scripted.get_stress(box), eager.get_stress(box), atol=1e-8)
