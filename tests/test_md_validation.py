"""MD validation suite: metrics on known answers, reports, and failure handling."""

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.cluster import Icosahedron
from ase.io import read

from ase_distill.metrics import force_angle_errors, force_metrics
from md_validation.metrics import (
    StabilityMonitor,
    drift_ratio,
    energy_drift,
    h_error,
    rdf,
    thermostat_stats,
)
from md_validation.runner import MDSettings, initial_velocities, run_md
from md_validation.suite import ValidationAborted, ValidationSettings, validate


@pytest.fixture
def cu13():
    return Icosahedron("Cu", 2, latticeconstant=3.6)


# --- metric functions on synthetic inputs -------------------------------------------------------
def test_linear_energy_ramp_gives_its_slope():
    t = np.linspace(0, 2.0, 50)  # ps
    n_atoms = 10
    e = -5.0 + 0.003 * n_atoms * t  # +3 meV/atom/ps
    d = energy_drift(t, e, n_atoms)
    assert d["drift_mev_per_atom_per_ps"] == pytest.approx(3.0, rel=1e-9)
    assert d["max_deviation_mev_per_atom"] == pytest.approx(6.0, rel=1e-9)
    ekin = np.sin(t * 20) * 0.01 + 0.5
    assert drift_ratio(t, e, ekin) == pytest.approx(0.06 / np.std(ekin), rel=1e-9)


def test_known_angle():
    ref = np.array([[1.0, 0, 0], [0, 2.0, 0], [0.01, 0, 0]])
    theta = np.radians(30)
    pred = np.array([[np.cos(theta), np.sin(theta), 0], [0, 2.0, 0], [0, 0.01, 0]])
    angles = force_angle_errors(pred, ref)
    np.testing.assert_allclose(angles, [30.0, 0.0], atol=1e-9)  # the 0.01 eV/A atom is excluded
    assert force_metrics(ref, ref)["force_rmse"] == 0.0
    assert force_metrics(ref, ref)["force_r2"] == 1.0


def test_rdf_of_ideal_lattice_peaks_at_nearest_neighbour():
    a = 3.6
    crystal = bulk("Cu", "fcc", a=a, cubic=True) * (3, 3, 3)
    r, g = rdf([crystal, crystal], r_max=5.0, bins=100)
    assert abs(r[np.argmax(g)] - a / np.sqrt(2)) <= (r[1] - r[0])  # first shell, within a bin
    assert np.all(g[r < 2.0] == 0)  # nothing closer than the first shell
    assert h_error(r, g, g) == 0.0


def test_thermostat_stats_canonical_width():
    s = thermostat_stats(np.array([290.0, 310.0]), 300.0, n_dof=200)
    assert s["mean_K"] == 300.0 and s["std_K"] == 10.0
    assert s["canonical_std_K"] == pytest.approx(300 * np.sqrt(0.01))


def test_stability_monitor_flags_broken_bond(cu13):
    mon = StabilityMonitor(cu13)
    assert mon.check(cu13, -1.0) is None
    broken = cu13.copy()
    broken.positions[0] += [0.8, 0, 0]
    assert "deviates" in mon.check(broken, -1.0)
    from ase import Atoms

    ch = Atoms("CH", positions=[[0, 0, 0], [1.09, 0, 0]])
    stretched = Atoms("CH", positions=[[0, 0, 0], [1.35, 0, 0]])  # hot vibration, still bonded
    gone = Atoms("CH", positions=[[0, 0, 0], [1.9, 0, 0]])
    assert StabilityMonitor(ch).check(stretched, 0.0) is None
    assert StabilityMonitor(ch).check(gone, 0.0) is not None
    nan = cu13.copy()
    nan.positions[1, 0] = np.nan
    assert "non-finite" in mon.check(nan, -1.0)


# --- runs ---
def test_drift_metric_separates_good_and_bad_time_steps(cu13):
    start = initial_velocities(cu13, 300, 0)
    drift, deviation = {}, {}
    for dt in (1.0, 12.0):
        r = run_md(
            start, EMT(), MDSettings("nve", 300, dt, int(1000 / dt), 2), "emt", progress=False
        )
        d = energy_drift(np.array(r.time_ps), r.etot, r.n_atoms)
        drift[dt], deviation[dt] = d["drift_mev_per_atom_per_ps"], d["max_deviation_mev_per_atom"]
    # measured (1 ps, seed 0): 0.003 meV/atom/ps at 1 fs, 0.31 at 12 fs; max deviation 0.04 vs 5.4
    assert abs(drift[1.0]) < 0.05  # well inside the project's 0.1 meV/atom/ps goal
    assert abs(drift[12.0]) > 0.1  # the too-large step fails that goal
    assert abs(drift[12.0]) > 20 * abs(drift[1.0])
    assert deviation[12.0] > 50 * deviation[1.0]


def test_teacher_as_its_own_student(cu13, tmp_path):
    settings = ValidationSettings(
        temperature_K=300, nve_ps=0.05, nvt_ps=0.05, timestep_fs=1.0, interval=5, relabel_every=2
    )
    m = validate(cu13, EMT(), EMT(), settings, tmp_path, "emt-student", "emt", "cu13", False)
    assert m["force_fidelity"]["force_rmse"] == 0.0
    assert m["force_fidelity"]["energy_mae_mev_per_atom"] == 0.0
    nve = m["runs"]["nve"]
    assert (
        nve["emt-student"]["drift_mev_per_atom_per_ps"] == nve["emt"]["drift_mev_per_atom_per_ps"]
    )
    assert m["structure_metrics"]["h_error"] == 0.0
    assert m["ensemble_energy_gap"]["gap_mev_per_atom"] == 0.0
    assert m["structure"] == "cu13"
    for name in m["figures"].values():
        assert (tmp_path / name).stat().st_size > 10_000, name  # a rendered PNG
    assert set(m["figures"]) == {
        "force_analysis",
        "nve_energy",
        "nvt_temperature",
        "nvt_energy",
        "structure",
        "bonds",
    }
    report = (tmp_path / "report.md").read_text()
    assert all(f"]({name})" in report for name in m["figures"].values())
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "complete"
    assert len(read(tmp_path / "nve_emt.traj", ":")) == 11


def test_periodic_system_with_rdf_and_bussi(tmp_path):
    crystal = bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 2, 2)
    settings = ValidationSettings(
        temperature_K=300, nve_ps=0.02, nvt_ps=0.02, timestep_fs=2.0, thermostat="bussi", interval=2
    )
    m = validate(crystal, EMT(), EMT(), settings, tmp_path, "a", "b", "cu-fcc", False)
    assert m["structure_metrics"]["kind"] == "rdf"
    assert "thermostat" in m["runs"]["nvt"]["a"]


class FailingCalc(EMT):
    """EMT that raises after a few calls (a teacher crashing mid-run)."""

    def __init__(self, fail_after):
        super().__init__()
        self.calls = 0
        self.fail_after = fail_after

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        self.calls += 1
        if self.calls > self.fail_after:
            raise RuntimeError("SCF did not converge")
        super().calculate(atoms, properties, system_changes)


def test_teacher_raising_mid_run_leaves_partial_outputs(cu13, tmp_path):
    settings = ValidationSettings(nve_ps=0.05, nvt_ps=0.0, timestep_fs=1.0, interval=2)
    with pytest.raises(ValidationAborted, match="SCF did not converge"):
        validate(cu13, EMT(), FailingCalc(15), settings, tmp_path, "s", "t", "cu13", False)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "aborted" and "SCF" in metrics["aborted"]
    partial = read(tmp_path / "nve_t.traj", ":")
    assert 1 <= len(partial) < 26


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"nve_ps": 0.0, "nvt_ps": 0.0}, "zero steps"),
        ({"temperature_K": -5.0}, "temperature"),
    ],
)
def test_bad_settings(kwargs, message, cu13, tmp_path):
    with pytest.raises(ValueError, match=message):
        validate(cu13, EMT(), EMT(), ValidationSettings(**kwargs), tmp_path, progress=False)


def test_bad_md_settings():
    with pytest.raises(ValueError, match="steps must be positive"):
        MDSettings(steps=0).check()
    with pytest.raises(ValueError, match="Unknown ensemble"):
        MDSettings(ensemble="npt").check()


def test_unknown_structure_name():
    from training.structures import load_structure

    with pytest.raises(ValueError, match="Unknown structure 'notamolecule'"):
        load_structure("notamolecule")


def test_teacher_trajectory_shared_between_students(cu13, tmp_path):
    settings = ValidationSettings(nve_ps=0.02, nvt_ps=0.0, timestep_fs=1.0, interval=5)
    cache = {}
    teacher = FailingCalc(10_000)
    validate(cu13, EMT(), teacher, settings, tmp_path / "a", "s1", "t", "cu13", False, cache)
    calls = teacher.calls
    validate(cu13, EMT(), teacher, settings, tmp_path / "b", "s2", "t", "cu13", False, cache)
    # the second student only costs the teacher its relabelling calls, not a new trajectory
    assert teacher.calls - calls <= 5
    assert "nve" in cache


def test_teacher_runs_stored_on_disk_and_shorter(cu13, tmp_path):
    from md_validation.runner import TeacherRunStore

    settings = ValidationSettings(
        nve_ps=0.02, nvt_ps=0.04, timestep_fs=1.0, interval=5, teacher_nve_ps=0.0,
        teacher_nvt_ps=0.02,
    )  # fmt: skip
    store = TeacherRunStore(tmp_path / "store")
    m = validate(cu13, EMT(), EMT(), settings, tmp_path / "a", "s", "t", "cu13", False,
                 teacher_store=store)  # fmt: skip
    assert m["runs"]["nvt"]["t"]["steps_done"] == 20 and m["runs"]["nvt"]["s"]["steps_done"] == 40
    assert "t" not in m["runs"]["nve"]
    assert len(list((tmp_path / "store").glob("*.traj"))) == 1
    teacher = FailingCalc(10_000)
    again = validate(cu13, EMT(), teacher, settings, tmp_path / "b", "s", "t", "cu13", False,
                     teacher_store=TeacherRunStore(tmp_path / "store"))  # fmt: skip
    # a new process: the teacher's trajectory comes from disk, only relabelling calls it
    assert teacher.calls <= 5
    assert again["runs"]["nvt"]["t"] == m["runs"]["nvt"]["t"]


def test_stored_teacher_run_is_continued_and_serves_shorter_runs(cu13, tmp_path):
    from md_validation.runner import TeacherRunStore

    def settings(teacher_ps):
        return ValidationSettings(
            nve_ps=0.0, nvt_ps=0.04, timestep_fs=1.0, interval=5, teacher_nvt_ps=teacher_ps
        )

    store = TeacherRunStore(tmp_path / "store")
    first = validate(cu13, EMT(), EMT(), settings(0.02), tmp_path / "a", "s", "t", "cu13", False,
                     teacher_store=store)  # fmt: skip
    teacher = FailingCalc(10_000)
    longer = validate(cu13, EMT(), teacher, settings(0.04), tmp_path / "b", "s", "t", "cu13",
                      False, teacher_store=store)  # fmt: skip
    assert longer["runs"]["nvt"]["t"]["steps_done"] == 40
    # 20 new steps (one force call each, ASE reuses the last frame's) plus relabelling
    assert 20 <= teacher.calls <= 20 + 5
    assert len(list((tmp_path / "store").glob("*.traj"))) == 1  # the 20-step run was its prefix
    shorter_teacher = FailingCalc(10_000)
    shorter = validate(cu13, EMT(), shorter_teacher, settings(0.02), tmp_path / "c", "s", "t",
                       "cu13", False, teacher_store=store)  # fmt: skip
    assert shorter["runs"]["nvt"]["t"]["steps_done"] == 20 and shorter_teacher.calls <= 5
    head = read(tmp_path / "a" / "nvt_t.traj", ":")
    np.testing.assert_array_equal(
        [a.positions for a in read(tmp_path / "b" / "nvt_t.traj", ":5")],
        [a.positions for a in head],
    )
    assert first["runs"]["nvt"]["t"]["steps_done"] == 20


def test_killed_teacher_run_resumes_from_its_checkpoint(cu13, tmp_path):
    from md_validation.runner import TeacherRunStore

    store = TeacherRunStore(tmp_path)
    start = initial_velocities(cu13, 300.0, 0)
    md = MDSettings("langevin", 300.0, 1.0, steps=30, interval=5)
    key, line = store.key(start, md, "t"), store.lineage(start, md, "t")

    def save(r):
        store.save(key, r, line, "t")

    killed = run_md(start, FailingCalc(12), md, "t", progress=False, checkpoint=save,
                    checkpoint_every_s=0.0)  # fmt: skip
    assert killed.aborted and 0 < store.longest(start, md, "t").steps_done < 30
    resumed = run_md(start, EMT(), md, "t", progress=False, previous=store.longest(start, md, "t"),
                     checkpoint=save)  # fmt: skip
    assert resumed.steps_done == 30 and len(resumed.frames) == 7
    assert resumed.time_ps == [0.0, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03]
    assert store.longest(start, md, "t").steps_done == 30


def test_runs_stored_before_lineages_are_found(cu13, tmp_path):
    from md_validation.runner import TeacherRunStore

    store = TeacherRunStore(tmp_path)
    start = initial_velocities(cu13, 300.0, 0)
    md = MDSettings("nve", 300.0, 1.0, steps=10, interval=5)
    res = run_md(start, EMT(), md, "t nve", progress=False)
    store.save(store.key(start, md, "t"), res, "ignored", "t")
    meta_path = next(tmp_path.glob("*.json"))
    meta = json.loads(meta_path.read_text())
    del meta["lineage"], meta["teacher"]  # the format of the first stored runs
    meta_path.write_text(json.dumps(meta))
    longer = MDSettings("nve", 300.0, 1.0, steps=20, interval=5)
    assert store.longest(start, longer, "t").steps_done == 10


def test_a_start_drawn_on_another_build_finds_its_stored_run(cu13, tmp_path):
    """The same seeded start from another numpy/ASE build differs in the last bit (4e-16 seen in
    the momenta); the store must still find the run, and a real change must not."""
    from md_validation.runner import TeacherRunStore

    store = TeacherRunStore(tmp_path)
    start = initial_velocities(cu13, 300.0, 0)
    md = MDSettings("nve", 300.0, 1.0, steps=10, interval=5)
    res = run_md(start, EMT(), md, "t nve", progress=False)
    store.save(store.key(start, md, "t"), res, store.lineage(start, md, "t"), "t")
    meta_path = next(tmp_path.glob("*.json"))
    meta = json.loads(meta_path.read_text())
    meta["lineage"] = "of-the-exact-bits"  # as written before the key was rounded
    meta_path.write_text(json.dumps(meta))
    drawn_elsewhere = start.copy()
    drawn_elsewhere.set_momenta(start.get_momenta() * (1 + 4e-16) + 4e-16)
    assert store.longest(drawn_elsewhere, md, "t").steps_done == 10
    moved = start.copy()
    moved.positions[0, 0] += 1e-6
    assert store.longest(moved, md, "t") is None


def test_a_failed_stored_run_is_not_continued(cu13):
    from md_validation.runner import MDResult

    failed = MDResult("t nve", MDSettings(steps=10), 13, failure="bond 0-1 deviates")
    with pytest.raises(ValueError, match="cannot be continued"):
        run_md(cu13, EMT(), MDSettings(steps=20), "t", progress=False, previous=failed)


def test_npt_density_of_a_periodic_box(tmp_path):
    from md_validation.density import density, npt_density

    crystal = bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 2, 2)
    d = npt_density(crystal, EMT(), tmp_path, 300.0, ps=0.05, timestep_fs=2.0, progress=False)
    assert abs(d["density_g_cm3"] - density(crystal)) < 0.5  # EMT copper stays near 8.9 g/cm3
    assert (tmp_path / "density.json").is_file() and (tmp_path / "density.png").is_file()
    with pytest.raises(ValueError, match="fully periodic"):
        npt_density(Icosahedron("Cu", 2), EMT(), tmp_path, progress=False)


def test_windowed_h_compares_equal_lengths():
    from md_validation.metrics import windowed_h

    crystal = bulk("Cu", "fcc", a=3.6, cubic=True) * (2, 2, 2)
    frames = []
    for k in range(8):
        a = crystal.copy()
        a.rattle(0.05, seed=k)
        frames.append(a)
    result = windowed_h(frames[:2], frames, lambda f: rdf(f, pair=(29, 29)))
    assert result["window_frames"] == 2 and len(result["h_windows"]) == 4
    assert result["h_windows"][0] == 0.0  # the first window is the reference itself
    assert result["student_window_to_window_h"] > 0


def test_stability_in_a_liquid_ignores_hydrogen_bonds():
    """Molecules moving as wholes in a periodic liquid are stable; a broken O-H is not."""
    from pathlib import Path

    box = read(Path(__file__).parents[1] / "reports" / "water" / "box32_start.xyz")
    monitor = StabilityMonitor(box)
    moved = box.copy()
    rng = np.random.default_rng(0)
    for m in range(len(box) // 3):  # every molecule shifted as a whole
        moved.positions[3 * m : 3 * m + 3] += rng.normal(scale=0.4, size=3)
    assert monitor.check(moved, 0.0) is None
    bond = moved.get_distance(0, 1, mic=True, vector=True)
    moved.positions[1] += 0.8 * bond / np.linalg.norm(bond)  # one O-H stretched by 0.8 A
    assert "deviates" in monitor.check(moved, 0.0)


def test_a_finished_report_is_not_overwritten_silently(tmp_path):
    from md_validation.cli import check_reports_free

    done, running = tmp_path / "aspirin_tiny", tmp_path / "aspirin_ultra-tiny"
    for folder, status in ((done, "complete"), (running, "running")):
        folder.mkdir()
        (folder / "metrics.json").write_text(json.dumps({"status": status}))
    check_reports_free([running, tmp_path / "new"], overwrite=False)  # unfinished: resumed over
    with pytest.raises(ValueError, match="--overwrite"):
        check_reports_free([done, running], overwrite=False)
    check_reports_free([done], overwrite=True)
    npt = tmp_path / "box_water-tiny_npt"
    npt.mkdir()
    (npt / "density.json").write_text("{}")
    with pytest.raises(ValueError, match="box_water-tiny_npt"):
        check_reports_free([npt], overwrite=False)


def test_teacher_run_length_fits_a_time_budget(capsys):
    """The GPU recipe sizes its teacher run from timed calls (benchmarks/gpu_session.sh)."""
    from benchmarks.teacher_ps_for_budget import main

    assert main(["emt", "CH4", "--budget-s", "1e6", "--max-ps", "2.5"]) == 0
    assert capsys.readouterr().out.strip() == "2.5"  # capped by --max-ps
    assert main(["emt", "CH4", "--budget-s", "1e-6"]) == 0
    assert capsys.readouterr().out.strip() == "0.0"  # nothing fits: the recipe runs nothing


def test_ensemble_energy_gap_ignores_offsets_and_sees_a_bias(cu13):
    from ase.calculators.calculator import Calculator, all_changes

    from md_validation.suite import ensemble_energy_gap

    class Biased(Calculator):
        """EMT plus ``offset`` per atom plus ``slope`` times the sum of x coordinates."""

        implemented_properties = ["energy", "forces"]

        def __init__(self, offset, slope):
            super().__init__()
            self.offset, self.slope, self.emt = offset, slope, EMT()

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            e = self.emt.get_potential_energy(atoms)
            f = self.emt.get_forces(atoms).copy()
            f[:, 0] -= self.slope
            x = atoms.positions[:, 0].sum()
            self.results = {"energy": e + self.offset * len(atoms) + self.slope * x, "forces": f}

    md = MDSettings(ensemble="langevin", temperature_K=300, steps=40, interval=4, seed=1)
    teacher_run = run_md(initial_velocities(cu13, 300, 1), EMT(), md, "teacher")
    student_run = run_md(initial_velocities(cu13, 300, 2), EMT(), md, "student")
    offset_only = ensemble_energy_gap(Biased(0.05, 0.0), teacher_run, student_run, EMT(), 1, 0.0)
    assert offset_only["gap_mev_per_atom"] == pytest.approx(0.0, abs=1e-9)
    assert offset_only["offset_on_teacher_frames_mev_per_atom"] == pytest.approx(50.0)
    gap = ensemble_energy_gap(Biased(0.0, 0.01), teacher_run, student_run, EMT(), 1, 0.0)

    def mean_x(run):
        return np.mean([f.positions[:, 0].sum() for f in run.frames]) * 0.01 / len(cu13) * 1000

    assert gap["gap_mev_per_atom"] == pytest.approx(mean_x(teacher_run) - mean_x(student_run))
    assert gap["teacher_frames"] == len(teacher_run.frames)

    class NeverCalled(Calculator):
        implemented_properties = ["energy", "forces"]

        def calculate(self, *args, **kwargs):
            raise RuntimeError("the teacher energies were already known")

    known = {i: EMT().get_potential_energy(f.copy()) for i, f in enumerate(student_run.frames)}
    reused = ensemble_energy_gap(
        Biased(0.0, 0.01), teacher_run, student_run, NeverCalled(), 1, 0.0, known
    )
    assert reused["gap_mev_per_atom"] == pytest.approx(gap["gap_mev_per_atom"])


def test_nvt_energies_follow_relabel_order():
    """The gap reuses relabel's teacher energies: NVT frames are found after the NVE ones."""
    from types import SimpleNamespace

    from md_validation.suite import _nvt_energies

    runs = {
        "nve": {"s": SimpleNamespace(frames=list(range(5)))},  # relabelled: 0, 2, 4
        "nvt": {"s": SimpleNamespace(frames=list(range(6)))},  # relabelled: 0, 2, 4
    }
    energies = [1.0, 2.0, 3.0, 10.0, None, 30.0]  # the teacher failed on NVT frame 2
    assert _nvt_energies(runs, "s", 2, energies) == {0: 10.0, 4: 30.0}
    assert _nvt_energies({"nve": runs["nve"]}, "s", 2, energies[:3]) == {}


def test_molecular_net_force_sees_intermolecular_errors():
    """Two waters: an error that moves one molecule as a whole shows in the net force."""
    from ase.build import molecule

    from md_validation.metrics import molecular_force_fidelity, molecule_index

    a, b = molecule("H2O"), molecule("H2O")
    b.translate([3.0, 0.0, 0.0])
    pair = a + b
    assert molecule_index(pair).tolist() == [0, 0, 0, 1, 1, 1]
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(6, 3))
    assert molecular_force_fidelity([pair], [ref], [ref])["molecular_net_force_r2"] == 1.0
    internal = ref.copy()
    internal[1] += 0.5  # within molecule 0, compensated inside it
    internal[2] -= 0.5
    same = molecular_force_fidelity([pair], [internal], [ref])
    assert same["molecular_net_force_rmse"] == pytest.approx(0.0, abs=1e-12)
    shifted = ref.copy()
    shifted[3:] += 0.2  # molecule 1 pushed as a whole
    net = molecular_force_fidelity([pair], [shifted], [ref])
    assert net["molecular_net_force_rmse"] == pytest.approx(np.sqrt(0.6**2 / 2), rel=1e-9)
    assert net["molecules"] == 2
    assert molecular_force_fidelity([a], [ref[:3]], [ref[:3]]) is None  # one molecule: no net
