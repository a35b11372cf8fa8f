"""The ensemble-gap loss (training/ensemble_gap.py) on small EMT copper boxes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import write

from ase_distill.model import ConservativePotential, StudentModel, size_config
from training.config import TrainConfig
from training.ensemble_gap import EnsembleGapError, ensemble_gap_loss, gap_groups
from training.generate import ENERGY_KEY, FORCES_KEY
from training.train import collate, prepare, train

ARCH = {"species": [29], "cutoff": 4.0, "features": 16, "interactions": 2, "radial_basis": 8}
SHIFT = 0.02  # eV/atom the "teacher" puts its own ensemble lower: the gap a student must learn


def _frames(seed: int = 0) -> list:
    """Two boxes; per box 6 gently rattled 'teacher' frames and 6 strongly rattled 'student' ones.

    The teacher's frames get ``SHIFT`` eV/atom less energy than EMT: a ranking of the two
    ensembles that a student fitted to energies alone has no reason to learn exactly.
    """
    rng = np.random.default_rng(seed)
    frames = []
    for box in ("box_a", "box_b"):
        for kind, sigma, shift in (("teacher_nvt", 0.04, -SHIFT), ("onpolicy", 0.15, 0.0)):
            for _ in range(6):
                atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
                atoms.positions += rng.normal(scale=sigma, size=atoms.positions.shape)
                atoms.calc = EMT()
                energy = atoms.get_potential_energy() + shift * len(atoms)
                atoms.arrays[FORCES_KEY] = atoms.get_forces()
                atoms.calc = None
                atoms.info.update({ENERGY_KEY: energy, "seed": box, "kind": kind, "split": "train"})
                frames.append(atoms)
    for atoms in frames[::6]:  # a validation frame of each ensemble and box
        atoms = atoms.copy()
        frames.append(atoms)
    for atoms in frames[-4:]:
        atoms.info["split"] = "validation"
    return frames


def test_gap_groups_pair_the_two_ensembles_of_each_box():
    frames = _frames()[:24]
    groups = gap_groups(frames, "teacher_nvt", "onpolicy")
    assert [g.box for g in groups] == ["box_a", "box_b"]
    assert groups[0].reference == tuple(range(6)) and groups[0].student == tuple(range(6, 12))
    with pytest.raises(EnsembleGapError, match="kinds \\['onpolicy', 'teacher_nvt'\\]"):
        gap_groups(frames, "teacher_nvt", "onpolicy_r1")
    assert isinstance(EnsembleGapError("x"), ValueError)


def test_gap_is_zero_for_a_per_box_offset_and_the_shift_otherwise():
    """A constant offset per box cancels; a shift of one ensemble is the gap, squared."""
    frames = _frames()[:24]
    model = StudentModel(size_config("ultra-tiny", **ARCH)).double()
    samples = prepare(frames, 4.0, (29,))
    graph, _ = collate(samples, torch.float64)
    with torch.no_grad():
        energy = ConservativePotential(model).evaluate(graph, forces=False)["energy"].numpy()
    offsets = {"box_a": 0.3, "box_b": -1.1}  # eV/atom
    for s, f, e in zip(samples, frames, energy):  # labels = student + per-box offset
        s.energy = float(e) - offsets[f.info["seed"]] * 32
    groups = gap_groups(frames, "teacher_nvt", "onpolicy")
    args = (torch.float64, torch.device("cpu"))
    rng = np.random.default_rng(0)
    term, gap = ensemble_gap_loss(model, samples, groups, 6, rng, *args)
    assert float(term.detach()) == pytest.approx(0.0, abs=1e-20)
    for s, f in zip(samples, frames):
        if f.info["kind"] == "teacher_nvt":
            s.energy -= SHIFT * 32  # the teacher ranks its own frames SHIFT lower
    term, gap = ensemble_gap_loss(model, samples, groups, 6, rng, *args)
    assert float(term.detach()) == pytest.approx(SHIFT**2, rel=1e-9)
    assert gap == pytest.approx(SHIFT * 1000, rel=1e-9)  # meV/atom: the student rates T higher


def _write(frames, path):
    write(path, frames, format="extxyz")
    return str(path)


def test_the_terms_gradient_closes_the_gap():
    """Adam steps on the term alone shrink a fresh student's gap (300 meV/atom here)."""
    frames = _frames()[:24]
    samples = prepare(frames, 4.0, (29,))
    groups = gap_groups(frames, "teacher_nvt", "onpolicy")
    torch.manual_seed(0)
    model = StudentModel(size_config("ultra-tiny", **ARCH))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    args = (torch.float32, torch.device("cpu"))
    _, first = ensemble_gap_loss(model, samples, groups, 6, rng, *args)
    for _ in range(60):
        term, _ = ensemble_gap_loss(model, samples, groups, 6, rng, *args)
        optimizer.zero_grad()
        term.backward()
        optimizer.step()
    _, last = ensemble_gap_loss(model, samples, groups, 6, rng, *args)
    # the direction is what is tested: 60 small steps take 300 meV/atom to ~30 (no overshoot)
    assert abs(last) < 0.25 * abs(first)


def test_training_records_the_gap_of_each_epoch(tmp_path):
    config = TrainConfig(
        dataset=_write(_frames(), tmp_path / "dataset.xyz"), output=str(tmp_path / "run"),
        size="ultra-tiny", architecture=ARCH, epochs=2, batch_size=4, ensemble_gap_weight=10.0,
    )  # fmt: skip
    train(config, progress=False)
    rows = json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"]
    assert all(np.isfinite(row["train_ensemble_gap_mev_per_atom"]) for row in rows)
    assert len(rows) == 2


def test_gap_weight_without_both_ensembles_is_refused(tmp_path):
    frames = [f for f in _frames() if f.info["kind"] == "onpolicy"]
    config = TrainConfig(
        dataset=_write(frames, tmp_path / "d.xyz"), output=str(tmp_path / "r"),
        size="ultra-tiny", architecture=ARCH, epochs=1, ensemble_gap_weight=1.0,
    )  # fmt: skip
    with pytest.raises(EnsembleGapError, match="same box"):
        train(config, progress=False)
