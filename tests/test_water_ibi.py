"""Boltzmann inversion of water's partial g(r) into a student's pair table; chain starts."""

import json

import numpy as np
import pytest
import torch
from ase.build import molecule
from ase.io import Trajectory
from ase.units import kB

from ase_distill import testing as T
from ase_distill.model import PairTable
from training.water_chains import ChainStartError, start_frames, write_starts
from training.water_ibi import (
    IBIError,
    boltzmann_correction,
    corrected_student,
    fit_force,
    neutral_ramp,
    recentre,
)

from .test_pair_correction import _label, _student, _water_boxes

KT = kB * 300.0
R = np.linspace(0.02, 4.9, 120)


def _g(shift=0.0, height=2.0):
    """A liquid-like g(r): zero core, a first peak at 2.8 + shift, 1 beyond."""
    core = 1 / (1 + np.exp(-(R - 2.5 - shift) / 0.05))
    return core * (1 + (height - 1) * np.exp(-(((R - 2.8 - shift) / 0.15) ** 2)))


def test_the_correction_is_zero_for_equal_g_and_kt_log_of_their_ratio():
    assert np.allclose(boltzmann_correction(R, _g(), _g(), KT, 1.0), 0.0)
    dv = boltzmann_correction(R, np.e * _g(), _g(), KT, 0.5)
    sampled = _g() > 0.2
    assert np.allclose(dv[sampled], 0.5 * KT, rtol=1e-6)
    assert np.allclose(dv[R < 2.0], dv[R < 2.0][0])  # the unsampled core: held, no force
    with pytest.raises(IBIError, match="floor"):
        boltzmann_correction(R, 0 * R, _g(), KT, 1.0)


def test_the_fitted_table_has_the_correction_as_its_energy():
    """V(r) = -int_r^rc g of the fitted force is dv up to its value at the end (0 here)."""
    dv = 0.01 * np.exp(-(((R - 3.0) / 0.4) ** 2))
    table = PairTable(1, 40, 1.6, 5.0)
    c = fit_force(table, R, dv, min_r=2.0)
    inside = (R > 2.0) & (R < 4.8)
    v = table.energy_basis(torch.as_tensor(R[inside], dtype=torch.float64)).numpy() @ c
    assert np.abs(v - dv[inside]).max() < 0.03 * dv.max()  # a 40-knot spline of a smooth bump
    g_below = table.force_basis(torch.tensor([1.7, 1.8, 1.9], dtype=torch.float64)).numpy() @ c
    assert np.abs(g_below).max() < 0.02 * np.abs(np.gradient(dv, R)).max()  # no force on bonds


def test_the_neutral_ramp_keeps_the_liquids_pair_energy():
    """With the ramp, the fitted table's energy averages to ~0 over the teacher's g(r)."""
    dv = 0.01 * np.exp(-(((R - 3.0) / 0.4) ** 2)) - 0.004 * np.exp(-(((R - 3.6) / 0.3) ** 2))
    table = PairTable(1, 40, 1.6, 5.0)
    inside = torch.as_tensor(R, dtype=torch.float64)

    def liquid_energy(ramp):
        v = table.energy_basis(inside).numpy() @ fit_force(table, R, dv, 2.2, ramp)
        return np.sum(R**2 * _g() * v)

    ramp = neutral_ramp(R, dv, _g(), 2.2)
    assert abs(liquid_energy(ramp)) < 0.02 * abs(liquid_energy(0.0))


def test_a_corrected_student_keeps_the_molecule_and_changes_the_liquid():
    """A molecule's energy and forces stay (its pairs lie below each min_r: a constant, taken
    off O's reference); a box's energy changes; a second correction adds to the first."""
    model = _student()
    student_g = {pair: (R, _g(shift=-0.05, height=2.4)) for pair in ((8, 8), (1, 8), (1, 1))}
    teacher_g = {pair: (R, _g()) for pair in student_g}
    corrected, record = corrected_student(model, student_g, teacher_g, 300.0, 1.0, 1.6, 40)
    assert record["molecule_shift_eV"] != 0.0
    water = molecule("H2O")
    water.center(vacuum=6.0)
    before, after = T.evaluate(model, water), T.evaluate(corrected, water)
    assert after["energy"][0] == pytest.approx(before["energy"][0], abs=1e-9)
    assert np.allclose(after["forces"], before["forces"], atol=1e-9)
    box = _water_boxes(1)[0]
    assert abs(T.evaluate(corrected, box)["energy"][0] - T.evaluate(model, box)["energy"][0]) > 1e-4
    twice, _ = corrected_student(corrected, student_g, teacher_g, 300.0, 1.0, 1.6, 40)
    assert torch.allclose(twice.pair.table, 2 * corrected.pair.table)
    with pytest.raises(IBIError, match="--knots"):
        corrected_student(corrected, student_g, teacher_g, 300.0, 1.0, 1.6, 30)


def test_recentring_keeps_the_mean_energy_per_molecule_and_every_force():
    model = _student()
    student_g = {pair: (R, _g(shift=-0.05, height=2.4)) for pair in ((8, 8), (1, 8), (1, 1))}
    teacher_g = {pair: (R, _g()) for pair in student_g}
    corrected, _ = corrected_student(model, student_g, teacher_g, 300.0, 1.0, 1.6, 40)
    boxes = _label(_water_boxes(3), model)  # any labels: prepare() asks for them
    forces = [T.evaluate(corrected, b)["forces"] for b in boxes]
    from training.train import predict, prepare

    graphs = prepare(boxes, model.cutoff, model.species)
    energies = predict(corrected, graphs, derivatives=False)  # recentre's path: no backward
    assert set(energies) == {"energy"}
    assert np.allclose(energies["energy"], predict(corrected, graphs)["energy"], atol=1e-10)
    shift = recentre(model, corrected, boxes)
    change = [
        T.evaluate(corrected, b)["energy"][0] - T.evaluate(model, b)["energy"][0] for b in boxes
    ]
    assert shift != 0.0 and np.mean(change) == pytest.approx(0.0, abs=1e-9)
    assert all(np.allclose(T.evaluate(corrected, b)["forces"], f) for b, f in zip(boxes, forces))


def test_chain_starts_are_frames_of_a_stored_run_never_overwritten(tmp_path):
    frames = _water_boxes(1) * 11
    with Trajectory(str(tmp_path / "run.traj"), "w") as traj:
        for k, f in enumerate(frames):
            f = f.copy()
            f.positions += 0.01 * k  # frame k is told apart by its shift
            traj.write(f)
    times = [0.005 * k for k in range(11)]
    (tmp_path / "run.json").write_text(json.dumps({"time_ps": times}))
    picked = start_frames(tmp_path / "run.traj", 3, 0.02)
    assert [round(t, 3) for t, _ in picked] == [0.05, 0.03, 0.01]
    with pytest.raises(ChainStartError, match="too short"):
        start_frames(tmp_path / "run.traj", 4, 0.02)
    earlier = start_frames(tmp_path / "run.traj", 2, 0.02, until_ps=0.03)  # a run since continued
    assert [round(t, 3) for t, _ in earlier] == [0.03, 0.01]
    assert np.allclose(earlier[0][1].positions, picked[1][1].positions)
    paths = write_starts(tmp_path / "run.traj", tmp_path / "starts", 3, 0.02)
    assert [p.name for p in paths] == ["run_t0.050ps.xyz", "run_t0.030ps.xyz", "run_t0.010ps.xyz"]
    seeds = json.loads((tmp_path / "starts" / "seeds.json").read_text())
    assert seeds == {"run_t0.010ps": 1, "run_t0.030ps": 2, "run_t0.050ps": 3}
    (tmp_path / "more.traj").write_bytes((tmp_path / "run.traj").read_bytes())  # another run
    (tmp_path / "more.json").write_text(json.dumps({"time_ps": times}))
    write_starts(tmp_path / "more.traj", tmp_path / "starts", 1, 0.02)
    seeds = json.loads((tmp_path / "starts" / "seeds.json").read_text())
    assert seeds["more_t0.050ps"] == 4 and seeds["run_t0.010ps"] == 1  # the old seeds stay
    with pytest.raises(ChainStartError, match="exist"):
        write_starts(tmp_path / "run.traj", tmp_path / "starts", 3, 0.02)
