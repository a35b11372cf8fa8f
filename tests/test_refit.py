"""Refitting a student's per-element energy references (training/refit.py)."""

import numpy as np
import pytest
from ase.io import read

from ase_distill.calculator import DistilledCalculator
from ase_distill.registry import student_path
from training.generate import ENERGY_KEY, FORCES_KEY, _frames_bytes
from training.refit import RefitError, main, refit_checkpoint

OFFSET = 0.003  # eV/atom: the teacher's energies lie this far below the student's


def _dataset(path, splits):
    """Frames of the water box labelled with water-tiny's own forces, energies offset."""
    box = read("reports/water/box32_start.xyz")
    calc = DistilledCalculator("water-tiny")
    frames = []
    for k, split in enumerate(splits):
        frame = box.copy()
        frame.rattle(0.02, seed=k)  # distinct frames, distinct energies
        frame.calc = calc
        energy, forces = frame.get_potential_energy(), frame.get_forces()
        frame.calc = None
        frame.info.update(kind="md", split=split, seed="box_00")
        frame.info[ENERGY_KEY] = energy - OFFSET * len(frame)
        frame.arrays[FORCES_KEY] = forces
        frames.append(frame)
    path.write_bytes(_frames_bytes(frames))
    return frames


def test_refit_removes_the_offset_and_changes_no_force(tmp_path):
    frames = _dataset(tmp_path / "d.xyz", ["train", "train", "validation"])
    out = tmp_path / "refit.pt"
    shift = refit_checkpoint(student_path("water-tiny"), tmp_path / "d.xyz", out)
    # water has one composition, so only 2 dE_H + dE_O is fixed: 3 atoms x the offset
    assert 2 * shift["H"] + shift["O"] == pytest.approx(-3 * OFFSET, abs=1e-7)
    old, new = DistilledCalculator("water-tiny"), DistilledCalculator.from_checkpoint(out)
    atoms = frames[2].copy()  # not fitted on: the offset is constant, so it is gone here too
    atoms.calc = new
    assert atoms.get_potential_energy() == pytest.approx(frames[2].info[ENERGY_KEY], abs=1e-5)
    forces_new = atoms.get_forces()
    atoms.calc = old
    np.testing.assert_allclose(forces_new, atoms.get_forces(), atol=1e-6)
    assert new.card["reference_refit"]["frames"] == 2


def test_refit_refuses_to_overwrite_and_needs_training_frames(tmp_path):
    _dataset(tmp_path / "d.xyz", ["validation"])
    with pytest.raises(RefitError, match="no frames of split 'train'"):
        refit_checkpoint(student_path("water-tiny"), tmp_path / "d.xyz", tmp_path / "a.pt")
    (tmp_path / "b.json").write_text("{}")
    args = [str(student_path("water-tiny")), str(tmp_path / "d.xyz"), str(tmp_path / "b.pt")]
    assert main(args) == 2  # the message names the file that exists
