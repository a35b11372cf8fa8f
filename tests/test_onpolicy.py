"""On-policy distillation rounds with a cheap teacher (EMT on Cu clusters)."""

import json

import numpy as np
import pytest

from tests.test_regressions import CU, _emt_dataset
from training.onpolicy import OnPolicyRun, OnPolicySettings, choose_frames


def _settings(tmp_path, **kw):
    base = dict(
        dataset=str(_emt_dataset(tmp_path / "d.xyz", n=24)),
        teacher="emt",
        output=str(tmp_path / "onpolicy"),
        architecture=CU,
        committee=2,
        rounds=2,
        epochs=2,
        batch_size=6,
        threads=1,
        md_runs=2,
        md_steps=20,
        interval=5,
        select=4,
        patience=5,
    )
    return OnPolicySettings(**{**base, **kw})


def test_rounds_grow_the_dataset_and_record_fidelity(tmp_path):
    state = OnPolicyRun(_settings(tmp_path), progress=False).run()
    out = tmp_path / "onpolicy"
    assert [r["round"] for r in state["history"]] == [0, 1]
    assert (out / "rounds.png").is_file()
    rows = json.loads((out / "rounds.json").read_text())
    assert all(np.isfinite(r["force_rmse"]) for r in rows)
    assert rows[1]["frames"] > rows[0]["frames"]  # round 0's labels joined round 1's data
    labelled = (out / "round_00" / "labelled.xyz").read_text()
    assert "committee_force_spread" in labelled


def test_a_killed_run_resumes_at_its_phase(tmp_path, monkeypatch):
    settings = _settings(tmp_path, rounds=1)
    run = OnPolicyRun(settings, progress=False)

    def killed():
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "_select", killed)
    with pytest.raises(KeyboardInterrupt):
        run.run()
    state = json.loads((tmp_path / "onpolicy" / "state.json").read_text())
    assert state["done"] == ["train", "evaluate", "explore"]
    monkeypatch.undo()
    resumed = OnPolicyRun(settings, progress=False)
    monkeypatch.setattr(resumed, "_train", lambda: pytest.fail("trained again after resume"))
    assert len(resumed.run()["history"]) == 1


def test_choose_frames_takes_the_largest_spread_and_some_random():
    scores = np.arange(20.0)
    chosen = choose_frames(scores, 8, 0.25, seed=0)
    assert len(chosen) == len(set(chosen)) == 8
    assert chosen[:6] == [19, 18, 17, 16, 15, 14]
    assert all(i < 14 for i in chosen[6:])


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="committee must be >= 2"):
        _settings(tmp_path, committee=1).check()
    with pytest.raises(ValueError, match="random_fraction"):
        _settings(tmp_path, random_fraction=1.0).check()
    with pytest.raises(ValueError, match="not found"):
        OnPolicySettings(dataset="nope.xyz", teacher="emt", output=str(tmp_path)).check()
    with pytest.raises(ValueError, match="not TrainConfig fields"):
        _settings(tmp_path, train={"learning_rate": 1e-3}).check()


def test_start_from_a_student_with_train_settings_and_new_seeds(tmp_path):
    """Round 0 fine-tunes a given student (not from scratch) with the given TrainConfig fields,
    and half the exploration starts from structures the dataset never held."""
    from ase.cluster import Icosahedron
    from ase.io import write

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = OnPolicyRun(_settings(tmp_path / "a", rounds=1), progress=False)
    first.run()
    seeds = tmp_path / "new.xyz"
    fresh = [Icosahedron("Cu", 2, latticeconstant=3.7 + 0.05 * k) for k in range(2)]
    for k, atoms in enumerate(fresh):
        atoms.rattle(0.05, seed=k)
        atoms.info["seed"] = f"new_{k}"
    write(seeds, fresh, format="extxyz")
    settings = _settings(
        tmp_path / "b", rounds=1, init_from=str(first.member_checkpoint(0, 0)),
        train={"max_steps_per_epoch": 1, "lr": 1e-4}, new_seeds=str(seeds),
    )  # fmt: skip
    run = OnPolicyRun(settings, progress=False)
    run.run()
    config = json.loads((run.round_dir(0) / "member_0" / "config.json").read_text())
    assert config["init_from"] == settings.init_from
    assert (config["max_steps_per_epoch"], config["lr"]) == (1, 1e-4)
    explored = (run.round_dir(0) / "explored.xyz").read_text()
    assert "new_0" in explored or "new_1" in explored


def test_control_report_pairs_rounds_with_control_stages(tmp_path):
    from training.heldout import HELDOUT_SPLIT
    from training.onpolicy import control_report

    run, control = tmp_path / "run", tmp_path / "control"
    run.mkdir()
    rows = [{"round": k, "force_rmse": 0.12 - 0.001 * k} for k in range(2)]
    (run / "rounds.json").write_text(json.dumps(rows))
    metrics = {"force_rmse": 0.121, "force_r2": 0.98, "force_angle_deg": 7.5}
    metrics["energy_mae_mev_per_atom"] = 7.0
    (control / "stage_0").mkdir(parents=True)
    summary = {"metrics": {HELDOUT_SPLIT: metrics}}
    (control / "stage_0" / "summary.json").write_text(json.dumps(summary))
    result = control_report(run, control, tmp_path / "out")
    assert result["control"] == [{"stage": 0, **metrics}]  # stage 1 missing: left out
    assert (tmp_path / "out" / "onpolicy.png").is_file()
