"""Structure comparison of stored trajectories (md_validation/compare_rdf.py)."""

import json

import pytest

from md_validation.compare_rdf import main

TRAJ = "reports/water/v4/box32_start_water-tiny/nvt_sevennet-0.traj"


def test_a_run_against_itself_has_h_zero_and_windows_show_order(tmp_path):
    out = tmp_path / "c.json"
    main([str(out), f"a={TRAJ}@0:20", f"b={TRAJ}@0:20", f"c={TRAJ}@-20:", "--window", "10"])
    result = json.loads(out.read_text())
    assert result["total_rdf_h"]["a vs b"] == pytest.approx(0.0, abs=1e-12)
    assert result["total_rdf_h"]["a vs c"] > 0
    assert [len(v) for v in result["oo_order"].values()] == [2, 2, 2]
    assert set(result["oo_order"]["a"][0]) == {"shell", "minimum"}
    part = result["total_rdf_h_from_below_1.75A"]["a vs c"]
    assert 0 < part < result["total_rdf_h"]["a vs c"]  # the bonds' share of h, not all of it


def test_plus_pools_slices_under_one_label(tmp_path):
    out = tmp_path / "c.json"
    main([str(out), f"whole={TRAJ}@0:20", f"pooled={TRAJ}@0:10+{TRAJ}@10:20", "--window", "10"])
    result = json.loads(out.read_text())
    assert result["runs"]["pooled"]["frames"] == 20
    assert result["total_rdf_h"]["whole vs pooled"] == pytest.approx(0.0, abs=1e-12)


def test_bad_runs_are_named(tmp_path):
    with pytest.raises(ValueError, match="LABEL=PATH"):
        main([str(tmp_path / "c.json"), TRAJ, f"b={TRAJ}"])
    with pytest.raises(ValueError, match="does not exist"):
        main([str(tmp_path / "c.json"), "a=missing.traj", f"b={TRAJ}"])
    with pytest.raises(ValueError, match="Labels must differ"):
        main([str(tmp_path / "c.json"), f"a={TRAJ}@0:5", f"a={TRAJ}@5:10"])
    with pytest.raises(ValueError, match="two or more"):
        main([str(tmp_path / "c.json"), f"a={TRAJ}"])


def test_intermolecular_rdfs_leave_out_the_bonds(tmp_path):
    import numpy as np
    from ase.io import read

    from md_validation.metrics import molecule_blocks, rdf

    frames = read(TRAJ, "0:5")
    # intramolecular O-H at 0.97 A and H-H at 1.53 A (down to 1.3); other molecules stay farther
    for pair, closest in (((8, 1), 1.2), ((1, 1), 1.45), (None, 1.2)):
        r, total = rdf(frames, pair=pair)
        _, inter = rdf(frames, pair=pair, intermolecular=True)
        bonded = r < closest
        assert total[bonded].max() > 0 and inter[bonded].max() == 0
    np.testing.assert_array_equal(
        rdf(frames, pair=(8, 8), intermolecular=True)[1], rdf(frames, pair=(8, 8))[1]
    )
    shuffled = frames[0][np.random.default_rng(0).permutation(len(frames[0]))]
    with pytest.raises(ValueError, match="one after another"):
        molecule_blocks(shuffled, None)
    out = tmp_path / "c.json"
    main([str(out), f"a={TRAJ}@0:10", f"b={TRAJ}@-10:", "--intermolecular"])
    assert json.loads(out.read_text())["intermolecular_rdf_h"]["a vs b"] > 0
