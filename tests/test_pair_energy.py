"""The energy ablation's all-pairs table (training.pair_energy): design, model and fit agree."""

import numpy as np
import torch

from ase_distill import testing as T
from ase_distill.model import PairTable
from tests.test_pair_correction import _label, _student, _water_boxes
from training.pair_energy import LinearFit, corrected_model, frame_design, solve

KNOTS, START = 10, 0.6


def _parameters(seed=1):
    """Random pair coefficients for (H,H), (H,O), (O,O) and two reference shifts (eV)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([0.05 * rng.normal(size=3 * KNOTS), [0.3, -0.7]])


def test_the_design_is_what_the_corrected_model_adds():
    student = _student()
    table = PairTable(1, KNOTS, START, student.cutoff)
    w = _parameters()
    fixed = corrected_model(student, table, w, KNOTS)
    for box in _water_boxes(2, seed=4):
        energy, forces = frame_design(table, tuple(student.species), box)
        before, after = T.evaluate(student, box), T.evaluate(fixed, box)
        # float64 throughout: agreement to round-off of sums over ~1,000 pairs
        assert abs(energy @ w - (after["energy"][0] - before["energy"][0])) < 1e-9
        np.testing.assert_allclose(
            forces @ w, (after["forces"] - before["forces"]).ravel(), atol=1e-9
        )


def test_the_fit_recovers_a_known_correction():
    torch.set_num_threads(1)
    student = _student()
    table = PairTable(1, KNOTS, START, student.cutoff)
    w = _parameters()
    frames = _label(_water_boxes(10), corrected_model(student, table, w, KNOTS))
    fit = LinearFit(student, table, frames)
    assert fit.scores(np.zeros_like(w))["force_rmse"] > 1e-3  # there is something to fit
    got = solve(fit.normal_equations(), np.ones(len(w), bool), force_weight=1.0, ridge=1e-12)
    scores = fit.scores(got)
    # the teacher differs from the student only by the correction: both residuals vanish
    assert scores["energy_mae_mev_per_atom"] < 1e-6
    assert scores["force_rmse"] < 1e-7
