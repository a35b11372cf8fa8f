"""The joint fit of a pair table to a Boltzmann-inversion force and the teacher's energies."""

import json

import numpy as np
import pytest
import torch

from ase_distill.model import PairTable
from training.pair_energy import LinearFit, corrected_model
from training.water_joint import JointFitError, kept_share, pick, scan, structure_terms
from training.water_joint import main as joint_main

from .test_pair_correction import _label, _student, _water_boxes

R = np.linspace(0.02, 4.9, 120)
MIN_R = {"8-8": 2.2, "1-8": 1.6, "1-1": 1.9}


def _record():
    """A water_ibi record: a smooth correction per pair and a liquid-like teacher g(r)."""
    g = 1 / (1 + np.exp(-(R - 2.5) / 0.05))
    pairs = {}
    for k, (name, min_r) in enumerate(MIN_R.items()):
        dv = 0.004 * (k + 1) * np.exp(-(((R - 3.0) / 0.4) ** 2))
        pairs[name] = {"r": R.tolist(), "dv_eV": dv.tolist(), "g_teacher": g.tolist(),
                       "min_r_A": min_r}  # fmt: skip
    return pairs


def _fits(model, table):
    teacher = _student(seed=1)  # labels the student misses: a real energy residual
    frames = _label(_water_boxes(6), teacher)
    return {
        "train": LinearFit(model, table, frames[:4]),
        "val": LinearFit(model, table, frames[4:]),
    }


def test_the_scan_trades_the_structure_target_for_the_energies():
    """lambda_E -> 0 keeps the whole target force (and none below min_r); a large lambda_E
    fits the energies at least as well as the references alone and keeps less."""
    model = _student()
    table = PairTable(1, 30, 1.6, model.cutoff)
    structure = structure_terms(table, _record(), tuple(model.species), 1.0)
    fits = _fits(model, table)
    rows = scan(structure, fits, [1e-6, 1e3], 0.0, 1e-10)
    free, tied = rows
    assert free["kept"] == pytest.approx(1.0, abs=0.02) and free["misfit"] < 0.02
    assert tied["misfit"] > free["misfit"] + 0.01
    assert (tied["train"]["energy_mae_mev_per_atom"]
            < free["train"]["energy_mae_mev_per_atom"])  # fmt: skip
    assert kept_share(structure, np.zeros_like(free["w"])) == {"kept": 0.0, "misfit": 1.0}
    fixed = corrected_model(model, table, free["w"], table.knots)
    below = torch.tensor([1.62, 1.7, 1.8], dtype=torch.float64)
    g_oh = fixed.pair.table[0, 1] @ table.force_basis(below).T
    assert g_oh.abs().max() < 1e-3  # O-H below its min_r (1.6 + a knot): no force on bonds
    own = fits["val"].scores(np.zeros_like(free["w"]))
    assert pick(rows, own, 1e9, 1e9) is free  # anything allowed: the least misfit
    assert pick(rows, own, -1.0, 1e9) is None  # no energy MAE is below zero


def test_keeping_the_energies_leaves_a_table_that_moves_no_training_energy():
    """With keep_energies and a large lambda_E, the table (and references) add ~0 to every
    training frame's energy: the scores equal the student's own."""
    model = _student()
    table = PairTable(1, 30, 1.6, model.cutoff)
    structure = structure_terms(table, _record(), tuple(model.species), 1.0)
    fits = _fits(model, table)
    (row,) = scan(structure, fits, [1e4], 0.0, 1e-10, keep_energies=True)
    own = fits["train"].scores(np.zeros_like(row["w"]))
    assert row["train"]["energy_mae_mev_per_atom"] == pytest.approx(
        own["energy_mae_mev_per_atom"], rel=0.01
    )
    (fitted,) = scan(structure, fits, [1e4], 0.0, 1e-10)  # fitting the residuals instead
    assert fitted["train"]["energy_mae_mev_per_atom"] < 0.5 * own["energy_mae_mev_per_atom"]


def test_the_cli_refuses_a_missing_pair_and_an_existing_output(tmp_path):
    record = {"knots": 30, "start_A": 1.6, "pairs": {"8-8": _record()["8-8"]}}
    (tmp_path / "ibi.json").write_text(json.dumps(record))
    with pytest.raises(JointFitError, match="1-1"):
        structure_terms(PairTable(1, 30, 1.6, 5.0), record["pairs"], (1, 8), 1.0)
    (tmp_path / "scan.json").write_text("{}")
    assert joint_main(["water-tiny", str(tmp_path / "ibi.json"), str(tmp_path / "scan")]) == 2
