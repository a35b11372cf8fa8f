"""Teacher-liquid frames (training/water_teacher_liquid.py) from stored EMT runs.

A periodic copper box stands in for the water box: EMT is stable on it, and the module only
needs periodic frames, a stored run and a teacher that gives energy, forces and stress.
"""

import json

import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import read

from ase_distill.md import initial_velocities
from md_validation.runner import MDSettings, TeacherRunStore, run_md
from training.generate import ENERGY_KEY, FORCES_KEY, STRESS_KEY
from training.water_teacher_liquid import NoStoredRunError, main


@pytest.fixture
def box(tmp_path):
    path = tmp_path / "box_00.xyz"
    bulk("Cu", cubic=True).repeat(2).write(path)
    return str(path)


def _store(folder, box, steps_list):
    """Stored EMT NVT runs of ``box``, one per length (0.5 fs steps, a frame per 1 fs)."""
    store = TeacherRunStore(folder)
    start = initial_velocities(read(box), 300.0, 0)
    for steps in steps_list:
        md = MDSettings("langevin", 300.0, 0.5, steps=steps, interval=2)
        res = run_md(start, EMT(), md, "emt langevin", progress=False)
        store.save(store.key(start, md, "emt"), res, store.lineage(start, md, "emt"), "emt")


def test_the_longest_run_is_sampled_after_equilibration_and_labelled(tmp_path, box):
    _store(tmp_path / "runs", box, [10, 20])  # 0.005 and 0.010 ps; the longer one is used
    out = tmp_path / "liquid"
    argv = [str(out), "--runs", str(tmp_path / "runs"), "--structures", box, "--teacher", "emt",
            "--discard-ps", "0.005", "--validation", "0.25"]  # fmt: skip
    assert main(argv) == 0
    frames = read(out / "dataset.xyz", ":")
    assert len(frames) == 6  # 0.005 ... 0.010 ps, one per fs
    assert [f.info["split"] for f in frames] == ["train"] * 4 + ["validation"] * 2  # last block
    assert all(f.info["seed"] == "box_00" and f.info["kind"] == "teacher_nvt" for f in frames)
    for f in frames:
        assert FORCES_KEY in f.arrays and STRESS_KEY in f.info and "run_energy" not in f.info
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"]["box_00"] == {"ps": 0.01, "frames": 6}
    # the label is the stored run's own energy: same teacher, same positions
    assert summary["max_label_vs_run_energy_mev_per_atom"] < 1e-6
    assert frames[0].info[ENERGY_KEY] == pytest.approx(EMT().get_potential_energy(frames[0]))
    with pytest.raises(FileExistsError, match="finished"):
        main(argv)
    # a run continued later gives the same dataset with --until-ps
    argv[0] = str(tmp_path / "cut")
    assert main([*argv, "--until-ps", "0.008"]) == 0
    assert len(read(tmp_path / "cut" / "dataset.xyz", ":")) == 4


def test_a_structure_without_a_stored_run_says_how_to_make_one(tmp_path, box):
    _store(tmp_path / "runs", box, [4])
    other = tmp_path / "other.xyz"
    moved = read(box)
    moved.positions[0] += 0.1
    moved.write(other)
    with pytest.raises(NoStoredRunError, match="--teacher-only"):
        main([str(tmp_path / "o"), "--runs", str(tmp_path / "runs"), "--structures", str(other)])


def test_a_failed_teacher_run_is_never_sampled(tmp_path):
    water = "reports/water/box32_start.xyz"  # EMT is no water model: an O-H bond breaks
    _store(tmp_path / "runs", water, [20])
    with pytest.raises(NoStoredRunError, match="failed"):
        main([str(tmp_path / "o"), "--runs", str(tmp_path / "runs"), "--structures", water])
