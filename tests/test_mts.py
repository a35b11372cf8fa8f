"""Multiple time stepping (md_validation.mts): r-RESPA impulses through an ASE calculator."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet

from ase_distill.md import initial_velocities
from md_validation.cli import _mts_teacher
from md_validation.mts import ImpulseMTS, MTSError, check_outer_step, mts_teacher_label


class Scaled(Calculator):
    """``scale`` times EMT: a cheap stand-in for a student that is close to its teacher."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale, self.emt = scale, EMT()

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        frame = self.atoms.copy()
        frame.calc = self.emt
        e = self.scale * frame.get_potential_energy()
        self.results = {"energy": e, "free_energy": e, "forces": self.scale * frame.get_forces()}


def _copper(seed: int = 0):
    atoms = bulk("Cu", cubic=True).repeat(2)
    atoms.rattle(0.05, seed=seed)
    atoms.set_momenta(initial_velocities(atoms, 600.0, seed).get_momenta())
    return atoms


def test_k1_is_plain_dynamics_on_the_slow_calculator():
    """k = 1 applies the whole correction every step: the slow calculator's trajectory."""
    plain, mts = _copper(), _copper()
    plain.calc, mts.calc = EMT(), ImpulseMTS(Scaled(0.7), EMT(), 1)
    for atoms in (plain, mts):
        Langevin(atoms, 2 * units.fs, temperature_K=600, friction=0.01 / units.fs, fixcm=False,
                 rng=np.random.default_rng(1)).run(20)  # fmt: skip
    np.testing.assert_allclose(mts.positions, plain.positions, atol=1e-10)  # float64 round-off


def test_the_correction_comes_every_kth_evaluation_scaled_by_k():
    atoms = _copper()
    calc = ImpulseMTS(Scaled(0.7), EMT(), 3)
    f_fast = Scaled(0.7).get_forces(atoms)
    f_slow = EMT().get_forces(atoms)
    for n in range(6):
        frame = atoms.copy()
        frame.positions[0, 0] += 1e-6 * n  # a new position: a new evaluation
        frame.calc = calc
        forces = frame.get_forces()
        expected = f_fast + 3 * (f_slow - f_fast) if n % 3 == 0 else f_fast
        np.testing.assert_allclose(forces, expected, atol=1e-4)  # the 1e-6 A shift's effect
    assert (calc.evaluations, calc.slow_evaluations) == (6, 2)
    assert atoms.calc is None  # inputs are not mutated


def test_nve_conserves_the_slow_hamiltonian_at_a_quarter_of_its_cost():
    """r-RESPA is symplectic: the slow calculator's total energy, read at the outer steps,
    fluctuates without drift, as in plain Verlet (EMT copper, 1 fs inner steps)."""
    k, outer_steps = 4, 100
    atoms = _copper()
    atoms.calc = ImpulseMTS(Scaled(0.7), EMT(), k)
    slow = EMT()
    dyn = VelocityVerlet(atoms, 1.0 * units.fs)
    totals = []
    for _ in range(outer_steps):
        dyn.run(k)
        totals.append(slow.get_potential_energy(atoms) + atoms.get_kinetic_energy())
    per_atom = (np.array(totals) - totals[0]) / len(atoms)
    # measured: 4e-5 eV/atom at most, 7e-6 for plain Verlet (k = 1); leaving out the factor k
    # of the impulse gives 1e-2, so 1e-3 separates right from wrong with room for round-off
    assert np.abs(per_atom).max() < 1e-3
    assert abs(per_atom[-20:].mean() - per_atom[:20].mean()) < 1e-4
    assert atoms.calc.slow_evaluations == outer_steps + 1  # one per outer step, and the start


def test_bad_outer_steps_and_modes_are_refused():
    check_outer_step(4, 0.5)
    with pytest.raises(MTSError, match="resonance"):
        check_outer_step(8, 0.5)
    with pytest.raises(MTSError, match=">= 1"):
        ImpulseMTS(EMT(), EMT(), 0)
    args = argparse.Namespace(teacher_only=False, teacher_mts="water-tiny", teacher_mts_steps=4,
                              timestep=0.5, fast=False, teacher="sevennet-0")  # fmt: skip
    with pytest.raises(ValueError, match="--teacher-only"):
        _mts_teacher(args, EMT())
    assert mts_teacher_label("sevennet-0", "water-tiny", 4) == "sevennet-0+mts4(water-tiny)"


def test_cli_stores_an_mts_teacher_run_under_its_own_name(tmp_path):
    """``validate --teacher-only --teacher-mts`` runs and stores a resumable teacher run."""
    import json

    from training.cli import main

    argv = ["validate", "--teacher-only", "--teacher", "emt", "--teacher-mts", "water-tiny",
            "--structure", "reports/water/box32_start.xyz", "--nve-ps", "0", "--nvt-ps", "0.01",
            "--teacher-runs", str(tmp_path), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert record["teacher"] == "emt+mts4(water-tiny)"
    # EMT is no model of water (its bonds stretch within these steps): the plumbing is tested
    assert record["steps_done"] == 20


def test_teacher_budget_stops_a_stored_run_that_the_same_command_continues(tmp_path, capsys):
    """``--teacher-budget-s`` stores a run short of its length; the same command finishes it."""
    import json

    from ase.cluster import Icosahedron
    from ase.io import write

    from training.cli import main

    write(tmp_path / "cu13.xyz", Icosahedron("Cu", 2))  # EMT's own metal: a stable run
    argv = ["validate", "--teacher-only", "--teacher", "emt", "--structure",
            str(tmp_path / "cu13.xyz"), "--nve-ps", "0", "--nvt-ps", "0.01",
            "--teacher-runs", str(tmp_path / "runs"), "--quiet"]  # fmt: skip
    assert main([*argv, "--teacher-budget-s", "0"]) == 0  # spent before the first step
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*.json")]
    assert record["steps_done"] == 0 and len(record["time_ps"]) == 1
    assert main(argv) == 0
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*.json")]
    assert record["steps_done"] == 20 and record["time_ps"][-1] == pytest.approx(0.01)
    assert main([a for a in argv if a != "--teacher-only"] + ["--teacher-budget-s", "5"]) == 2
    assert "add --teacher-only" in capsys.readouterr().err
