"""The energy ablation's all-pairs table (training.pair_energy): design, model and fit agree."""

import json

import numpy as np
import pytest
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


def test_the_cli_writes_rows_and_a_shippable_student(tmp_path):
    from ase.io import write

    from ase_distill.checkpoint import load_checkpoint, save_checkpoint
    from training.pair_energy import PairEnergyError, main

    torch.set_num_threads(1)
    student = _student()
    table = PairTable(1, KNOTS, START, student.cutoff)
    frames = _label(_water_boxes(12, seed=5), corrected_model(student, table, _parameters(), KNOTS))
    for k, f in enumerate(frames):  # 6 training frames, 3 validation, 3 held-out "molecules"
        split = "train" if k < 6 else "validation" if k < 9 else "test_molecule"
        f.info.update(split=split, kind="md", param=300.0, seed=f"box{k % 2}")
    dataset = tmp_path / "dataset.xyz"
    write(dataset, frames, format="extxyz")
    save_checkpoint(student, tmp_path / "student", {"training_data": {"dataset": str(dataset)}})
    fit = ["--knots", str(KNOTS), "--start", str(START), "--force-weights", "1", "--ridges", "1e-9"]
    out, checkpoint = tmp_path / "ablation.json", str(tmp_path / "student.pt")
    main([str(dataset), str(out), checkpoint, *fit])
    with pytest.raises(PairEnergyError, match="exists"):  # finished results are kept
        main([str(dataset), str(out), checkpoint, *fit])
    rows = json.loads(out.read_text())["results"][checkpoint]["heldout"]
    # the teacher is the student plus such a table: the fit leaves nothing on held-out frames
    assert rows["student"]["force_rmse"] > 1e-3 and rows["pairs"]["force_rmse"] < 1e-5
    main([str(dataset), str(tmp_path / "again.json"), checkpoint, *fit, "--save", str(tmp_path)])
    saved, card = load_checkpoint(tmp_path / "student-pairs")
    assert card["training"]["pair_energy"]["knots"] == KNOTS and "validation" in card["metrics"]
    T.run_all_checks(saved)


def test_remeasure_keeps_the_weights_and_measures_the_new_held_out_set(tmp_path):
    from ase.io import write

    from ase_distill.checkpoint import load_checkpoint, save_checkpoint
    from training.ship import remeasure

    torch.set_num_threads(1)
    student = _student()
    frames = _label(_water_boxes(6, seed=7), student)
    for k, f in enumerate(frames):  # the last two are the new held-out "molecule"
        f.info.update(split="train" if k < 4 else "test_molecule", kind="md", param=300.0)
        f.info["seed"] = f"box{k}"
    write(tmp_path / "dataset.xyz", frames, format="extxyz")
    card = {"training_data": {"dataset": "old.xyz"}, "metrics": {"old": {}}}
    save_checkpoint(student, tmp_path / "student", card)
    new = remeasure(tmp_path / "student.pt", tmp_path / "dataset.xyz", tmp_path / "again", "why")
    saved, stored = load_checkpoint(tmp_path / "again")
    assert stored["training"]["remeasured"] == {
        "dataset": str(tmp_path / "dataset.xyz"),
        "why": "why",
    }
    assert stored["training_data"] == {"dataset": "old.xyz"} and "old" not in stored["metrics"]
    held = new["metrics"]["heldout_md_300_600K"]
    assert held["n_structures"] == 2 and held["force_rmse"] < 1e-5  # labelled by the student
    for a, b in zip(saved.state_dict().values(), student.state_dict().values()):
        assert torch.equal(a, b)


def test_cap_share_splits_the_force_error_at_the_cap(tmp_path):
    from ase_distill.checkpoint import save_checkpoint
    from training.cap_share import cap_share

    torch.set_num_threads(1)
    student = _student()
    frames = _label(_water_boxes(3, seed=8), student)  # the student is exact on these
    frames[0].arrays["REF_forces"] = frames[0].arrays["REF_forces"] + 100.0  # one far frame
    save_checkpoint(student, tmp_path / "student", {})
    row = cap_share(str(tmp_path / "student.pt"), frames, cap=30.0)
    assert row["frames_above_cap"] == 1 and row["share_above_cap"] == pytest.approx(1.0)
    assert row["force_rmse_below_cap"] < 1e-5 < row["force_rmse"]


def test_angle_by_force_parts_add_up_to_the_mean(tmp_path):
    from ase_distill.checkpoint import save_checkpoint
    from ase_distill.metrics import force_angle_errors
    from training.angle_by_force import angle_by_force

    torch.set_num_threads(1)
    student = _student()
    frames = _label(_water_boxes(2, seed=9), student)
    rng = np.random.default_rng(0)
    for f in frames:  # teacher forces the student does not reproduce: angles are not zero
        f.arrays["REF_forces"] = f.arrays["REF_forces"] + rng.normal(0, 0.3, (len(f), 3))
    save_checkpoint(student, tmp_path / "student", {})
    row = angle_by_force(str(tmp_path / "student.pt"), frames, (0.1, 0.5))
    parts = sum(b["contribution_deg"] for b in row["bands"])
    assert row["force_angle_deg"] > 1.0 and parts == pytest.approx(row["force_angle_deg"])
    assert sum(b["share"] for b in row["bands"]) == pytest.approx(1.0)
    ref = np.concatenate([f.arrays["REF_forces"] for f in frames])  # before _label overwrites
    pred = np.concatenate([f.arrays["REF_forces"] for f in _label(frames, student)])
    expected = force_angle_errors(pred, ref).mean()
    assert row["force_angle_deg"] == pytest.approx(expected, rel=1e-4)  # float64 vs the default
