"""A student on sets of labelled frames (training/frame_fidelity.py)."""

import json

import pytest
from ase.io import read

from ase_distill.calculator import DistilledCalculator
from training.frame_fidelity import main, parse_part
from training.generate import ENERGY_KEY, FORCES_KEY, _frames_bytes


def test_offsets_per_part_and_split(tmp_path):
    box = read("reports/water/box32_start.xyz")
    calc = DistilledCalculator("water-tiny")
    frames = []
    for split, shift in [("validation", 0.002), ("train", -0.001)]:  # eV/atom below student
        frame = box.copy()
        frame.calc = calc
        energy, forces = frame.get_potential_energy(), frame.get_forces()
        frame.calc = None
        frame.info.update(kind="md", split=split, seed="box_00")
        frame.info[ENERGY_KEY] = energy - shift * len(frame)
        frame.arrays[FORCES_KEY] = forces
        frames.append(frame)
    path = tmp_path / "d.xyz"
    path.write_bytes(_frames_bytes(frames))
    out = tmp_path / "o.json"
    parts = [f"teacher={path}:validation", f"own={path}:train", f"all={path}"]
    assert main([str(out), "water-tiny", "--parts", *parts]) == 0
    rows = json.loads(out.read_text())["students"]["water-tiny"]
    assert rows["teacher"]["mean"] == pytest.approx(2.0, abs=1e-6)
    assert rows["own"]["mean"] == pytest.approx(-1.0, abs=1e-6)
    assert {k: rows["all"][k] for k in ("frames", "mean", "mae")} == pytest.approx(
        {"frames": 2, "mean": 0.5, "mae": 1.5}, abs=1e-6
    )
    # the labels are the student's own forces: both fidelities are perfect
    assert rows["all"]["force_r2"] == pytest.approx(1.0)
    assert rows["all"]["molecular_net_force_r2"] == pytest.approx(1.0)
    assert rows["all"]["molecules"] == 2 * 32
    with pytest.raises(ValueError, match="selects no frame"):
        main([str(out), "water-tiny", "--parts", f"held-out={path}:test_molecule"])


def test_a_part_needs_a_name():
    assert parse_part("a=x.xyz:validation") == ("a", "x.xyz", "validation")
    with pytest.raises(ValueError, match="NAME=DATASET"):
        parse_part("x.xyz")
