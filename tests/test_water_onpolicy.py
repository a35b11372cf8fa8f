"""On-policy water frames (training/water_onpolicy.py) with the EMT teacher."""

import json

import numpy as np
import pytest
from ase.io import read

from training.generate import ENERGY_KEY, FORCES_KEY, STRESS_KEY, _frames_bytes
from training.teachers import make_teacher
from training.water_onpolicy import explore, label, main, starts_by_split


def _dataset(tmp_path):
    """Three copies of a water box, one per split, labelled by EMT.

    EMT's H and O parameters are no water model, but it gives periodic stress cheaply (TIP3P
    has none), which is all the plumbing needs.
    """
    box = read("reports/water/box32_start.xyz")
    teacher = make_teacher("emt")
    frames = []
    for seed, split in [("box_00", "train"), ("box_01", "validation"), ("box_28", "test_molecule")]:
        lab = teacher.label(box)
        frame = box.copy()
        frame.info.update(seed=seed, split=split, kind="md")
        frame.info[ENERGY_KEY] = lab.info["energy"]
        frame.info[STRESS_KEY] = lab.info["stress"]
        frame.arrays[FORCES_KEY] = lab.arrays["forces"]
        frames.append(frame)
    path = tmp_path / "dataset.xyz"
    path.write_bytes(_frames_bytes(frames))
    return path


def test_held_out_boxes_are_never_explored(tmp_path):
    starts = starts_by_split(_dataset(tmp_path))
    assert [a.info["seed"] for a in starts] == ["box_01", "box_00"]  # validation first
    assert [a.info["seed"] for a in starts_by_split(_dataset(tmp_path), boxes=1)] == ["box_01"]
    named = starts_by_split(_dataset(tmp_path), seeds=["box_00", "box_01"])
    assert [a.info["seed"] for a in named] == ["box_00", "box_01"]
    with pytest.raises(ValueError, match="held-out boxes are never explored"):
        starts_by_split(_dataset(tmp_path), seeds=["box_28"])


def test_frames_keep_their_box_split_and_stay_in_the_cell(tmp_path):
    starts = starts_by_split(_dataset(tmp_path))
    frames = explore("water-tiny", starts, [300.0], 0.01, 0.005, 5, compile=False)
    assert len(frames) == 2 * 2  # steps 15 and 20 of 20, two boxes
    assert {f.info["split"] for f in frames} == {"train", "validation"}
    for f in frames:
        scaled = f.get_scaled_positions(wrap=False)
        assert np.all((scaled >= 0) & (scaled < 1))
    assert {f.info["kind"] for f in frames} == {"onpolicy"}
    named = explore("water-tiny", starts[:1], [300.0], 0.01, 0.005, 10, compile=False, kind="r1")
    assert named[0].info["kind"] == "r1" and "__r1_300_" in named[0].info["task"]


def test_a_killed_exploration_resumes_with_the_same_frames(tmp_path):
    starts = starts_by_split(_dataset(tmp_path))
    whole = explore("water-tiny", starts, [300.0], 0.01, 0.005, 5, compile=False)
    partial = tmp_path / "partial.xyz"
    partial.write_bytes(_frames_bytes(whole[:2]))  # killed after the first box
    resumed = explore("water-tiny", starts, [300.0], 0.01, 0.005, 5, compile=False, partial=partial)
    assert [f.info["task"] for f in resumed] == [f.info["task"] for f in whole]
    for a, b in zip(resumed, whole):
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-6)
    assert len(read(partial, index=":")) == len(whole)


def test_labels_resume_and_a_finished_folder_is_refused(tmp_path):
    dataset = _dataset(tmp_path)
    out = tmp_path / "op"
    args = [str(dataset), str(out), "--teacher", "emt", "--ps", "0.01", "--discard-ps", "0.005"]
    args += ["--interval", "5", "--eager"]
    starts = starts_by_split(dataset)
    frames = explore("water-tiny", starts, [270.0], 0.01, 0.005, 5, compile=False)
    out.mkdir()
    (out / "explored.xyz").write_bytes(_frames_bytes(frames))
    first = label("emt", frames[:1], out / "labelled.xyz", chunk=1)  # a run killed after one
    assert main(["water-tiny", *args]) == 0
    labelled = read(out / "dataset.xyz", index=":")
    assert len(labelled) == len(frames)
    assert labelled[0].info[ENERGY_KEY] == pytest.approx(first[0].info[ENERGY_KEY])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["splits"] == {"validation": 2, "train": 2}
    assert summary["teacher"]["name"] == "emt"
    with pytest.raises(FileExistsError, match="finished"):
        main(["water-tiny", *args])
