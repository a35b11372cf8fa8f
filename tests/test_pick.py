"""training.pick: the choice among finished runs uses validation numbers and a constraint."""

import json

import pytest

from training.pick import PickError, main, pick


def _run(tmp_path, name, angle, energy):
    run = tmp_path / name
    run.mkdir()
    metrics = {"validation": {"force_angle_deg": angle, "energy_mae_mev_per_atom": energy}}
    (run / "summary.json").write_text(json.dumps({"complete": True, "metrics": metrics}))
    return str(run)


def test_pick_takes_the_least_metric_among_runs_no_worse_on_the_kept_ones(tmp_path, capsys):
    base = _run(tmp_path, "base", 5.9, 3.6)
    worse_energy = _run(tmp_path, "a", 5.2, 3.7)  # the best angle, but a worse energy
    good = _run(tmp_path, "b", 5.5, 3.5)
    also = _run(tmp_path, "c", 5.7, 3.6)  # equal energy is allowed
    best, rows = pick(
        base, [worse_energy, good, also], "force_angle_deg", ["energy_mae_mev_per_atom"]
    )
    assert best == good
    assert [row[3] for row in rows] == [False, True, True]
    main([base, worse_energy, "--keep", "energy_mae_mev_per_atom"])
    out = capsys.readouterr().out
    assert "not eligible" in out and out.strip().endswith("picked: none")


def test_pick_refuses_an_unfinished_run(tmp_path):
    base = _run(tmp_path, "base", 5.9, 3.6)
    (tmp_path / "running").mkdir()
    with pytest.raises(PickError, match="unfinished"):
        pick(base, [str(tmp_path / "running")], "force_angle_deg", [])
