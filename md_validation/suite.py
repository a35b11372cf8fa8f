"""Student vs teacher MD validation: runs, metrics.json, plots and report.md in one folder."""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.data import chemical_symbols

from ase_distill.checkpoint import atomic_write_json
from ase_distill.metrics import fidelity_report
from md_validation import plots
from md_validation.metrics import (
    bond_lengths,
    bonds,
    distance_histogram,
    drift_ratio,
    energy_drift,
    h_error,
    molecular_force_fidelity,
    rdf,
    thermostat_stats,
    windowed_h,
)
from md_validation.runner import (
    MDResult,
    MDSettings,
    TeacherRunStore,
    initial_velocities,
    run_md,
    truncated,
    write_frames,
)

#: Verdict thresholds (the project's goals; see the MD validation issue).
DRIFT_GOAL = 0.1  # meV/atom/ps
FIDELITY_GOAL_R2 = 0.99


@dataclass
class ValidationSettings:
    """What to run: NVE and NVT lengths, thermostat, sampling."""

    temperature_K: float = 300.0
    nve_ps: float = 1.0
    nvt_ps: float = 1.0
    timestep_fs: float = 0.5
    nvt_temperature_K: float | None = None
    thermostat: str = "langevin"
    interval: int = 10
    relabel_every: int = 5
    seed: int = 0
    teacher_md: bool = True
    teacher_nve_ps: float | None = None
    teacher_nvt_ps: float | None = None
    discard_ps: float = 0.0
    # the students ran through the compiled float32 path (DistilledCalculator(fast=True))
    student_fast: bool = False

    def steps(self, ps: float) -> int:
        """Number of steps for ``ps`` picoseconds."""
        return int(round(ps * 1000.0 / self.timestep_fs))

    def check(self) -> None:
        """Raise ``ValueError`` for impossible settings (each message names the option)."""
        if not self.timestep_fs > 0:
            raise ValueError(f"--timestep must be > 0 fs, got {self.timestep_fs}; try 0.5.")
        if self.temperature_K < 0 or (self.nvt_temperature_K or 0) < 0:
            raise ValueError("--temperature and --nvt-temperature must be >= 0 K.")
        for option, ps in (
            ("--nve-ps", self.nve_ps),
            ("--nvt-ps", self.nvt_ps),
            ("--teacher-nve-ps", 0.0 if self.teacher_nve_ps is None else self.teacher_nve_ps),
            ("--teacher-nvt-ps", 0.0 if self.teacher_nvt_ps is None else self.teacher_nvt_ps),
        ):
            if not ps >= 0:
                raise ValueError(f"{option} must be >= 0 ps (0 skips that run), got {ps}.")
        if self.steps(self.nve_ps) <= 0 and self.steps(self.nvt_ps) <= 0:
            raise ValueError("zero steps: give --nve-ps and/or --nvt-ps larger than the time step.")
        if self.interval < 1:
            raise ValueError(f"--interval must be >= 1 step, got {self.interval}.")
        if not self.discard_ps >= 0:
            raise ValueError(f"--discard-ps must be >= 0, got {self.discard_ps}.")
        if self.relabel_every < 1:
            raise ValueError(f"--relabel-every must be >= 1, got {self.relabel_every}.")


UNITS = {
    "drift_mev_per_atom_per_ps": "meV/atom/ps",
    "max_deviation_mev_per_atom": "meV/atom",
    "drift_ratio": "dimensionless",
    "steps_per_second": "1/s",
    "force_rmse": "eV/A",
    "force_mae": "eV/A",
    "force_angle_deg": "degree",
    "energy_mae_mev_per_atom": "meV/atom",
    "temperature": "K",
    "stress_mae_gpa": "GPa",
    "pressure_mae_gpa": "GPa",
    "density_g_cm3": "g/cm^3",
    "h_error": "dimensionless (integrated |g_student - g_teacher| / integrated g_teacher)",
}


class ValidationAborted(ValueError):
    """A calculator raised mid-run; the partial trajectory and metrics were written."""


def _dof(atoms: Atoms) -> int:
    return max(3 * len(atoms) - (3 if atoms.pbc.any() else 6), 1)


def _series_metrics(r: MDResult) -> dict[str, Any]:
    out: dict[str, Any] = {
        "steps_done": r.steps_done,
        "steps_requested": r.settings.steps,
        "simulated_ps": r.steps_done * r.settings.timestep_fs / 1000.0,
        "steps_per_second": r.steps_per_second,
        "stable": r.failure is None and r.aborted is None,
        "failure": r.failure,
        "failure_time_ps": r.failure_time_ps,
        "aborted": r.aborted,
        "trajectory": Path(r.trajectory).name if r.trajectory else None,
    }
    if len(r.time_ps) >= 2:
        if r.settings.ensemble == "nve":
            out.update(energy_drift(np.asarray(r.time_ps), r.etot, r.n_atoms))
            out["drift_ratio"] = drift_ratio(r.time_ps, r.etot, r.ekin)
        else:
            out["thermostat"] = thermostat_stats(
                np.asarray(r.temperature), r.settings.temperature_K, _dof(r.frames[0])
            )
    return out


def _bond_data(frames_by_label: dict[str, list[Atoms]], start: Atoms) -> dict[str, dict]:
    pairs = bonds(start)
    names = [
        "-".join(sorted((chemical_symbols[start.numbers[a]], chemical_symbols[start.numbers[b]])))
        for a, b in pairs
    ]
    data: dict[str, dict[str, np.ndarray]] = {}
    if len(pairs) == 0:
        return data
    for label, frames in frames_by_label.items():
        lengths = np.array([bond_lengths(f, pairs) for f in frames])  # (frames, bonds)
        for name in sorted(set(names)):
            cols = [k for k, n in enumerate(names) if n == name]
            data.setdefault(name, {})[label] = lengths[:, cols].ravel()
    return data


def plan_runs(
    settings: ValidationSettings, for_teacher: bool = False
) -> list[tuple[str, MDSettings]]:
    """The NVE and NVT runs the settings ask for (a run of 0 ps is skipped).

    The teacher's runs may be shorter than the student's (``teacher_nve_ps`` /
    ``teacher_nvt_ps``): a foundation teacher costs seconds per step.
    """
    nvt_t = settings.nvt_temperature_K
    nvt_t = settings.temperature_K if nvt_t is None else nvt_t
    nve_ps, nvt_ps = settings.nve_ps, settings.nvt_ps
    if for_teacher:
        nve_ps = nve_ps if settings.teacher_nve_ps is None else settings.teacher_nve_ps
        nvt_ps = nvt_ps if settings.teacher_nvt_ps is None else settings.teacher_nvt_ps
    plans = []
    for kind, ps, ensemble, temperature in (
        ("nve", nve_ps, "nve", settings.temperature_K),
        ("nvt", nvt_ps, settings.thermostat, nvt_t),
    ):
        steps = settings.steps(ps)
        if steps > 0:
            md = MDSettings(
                ensemble, temperature, settings.timestep_fs, steps, settings.interval,
                seed=settings.seed,
            )  # fmt: skip
            plans.append((kind, md))
    return plans


def new_metrics(structure: Atoms, settings: ValidationSettings, names: dict[str, str]) -> dict:
    """The metrics record before any run (status ``running``)."""
    return {
        "status": "running",
        "structure": names["structure"],
        "n_atoms": len(structure),
        "student": names["student"],
        "teacher": names["teacher"],
        "settings": asdict(settings),
        "machine": {"platform": platform.platform(), "processor": platform.processor()},
        "units": UNITS,
        "runs": {},
    }


def _teacher_run(
    kind: str,
    start: Atoms,
    calc: Calculator,
    md: MDSettings,
    label: str,
    traj: Path,
    cache: dict[str, MDResult] | None,
    store: TeacherRunStore | None,
    progress: bool,
    time_budget_s: float | None = None,
) -> MDResult:
    """The teacher's run: from the in-process cache, the on-disk store, or computed now.

    A longer stored run of the same lineage gives its first steps; a shorter (or interrupted)
    one is continued, saved every few minutes while it runs, and stopped short after
    ``time_budget_s`` seconds of MD if given (stored, to be continued).
    """
    if cache is not None and kind in cache:
        return cache[kind]
    stored = store.longest(start, md, label) if store is not None else None
    if stored is not None and (stored.steps_done >= md.steps or stored.failure):
        res = truncated(stored, md.steps)
        write_frames(traj, res.frames)  # the report folder keeps its own copy
        res.trajectory = str(traj)
    else:
        checkpoint = None
        if store is not None:
            key, line = (
                TeacherRunStore.key(start, md, label),
                TeacherRunStore.lineage(start, md, label),
            )

            def checkpoint(r: MDResult) -> None:
                store.save(key, r, line, label)

        res = run_md(
            start, calc, md, f"{label} {md.ensemble}", traj, progress,
            previous=stored, checkpoint=checkpoint, time_budget_s=time_budget_s,
        )  # fmt: skip
        continued = Path(stored.trajectory).stem if stored is not None else None
        if store is not None and not res.aborted and continued not in (None, key):
            store.remove(continued)  # the new run starts with it
    if cache is not None and not res.aborted:
        cache[kind] = res
    return res


def run_all(
    plans: dict[str, list[tuple[str, MDSettings]]],
    start: Atoms,
    calcs: dict[str, Calculator],
    out: Path,
    metrics: dict[str, Any],
    teacher_cache: dict[str, MDResult] | None,
    progress: bool,
    store: TeacherRunStore | None = None,
) -> dict[str, dict[str, MDResult]]:
    """Every planned run for every calculator (``plans`` by calculator label).

    The teacher's runs may come from the in-process cache or the on-disk store.

    Raises:
        ValidationAborted: a calculator raised mid-run (metrics.json written first).
    """
    teacher = metrics["teacher"]
    runs: dict[str, dict[str, MDResult]] = {}
    for label, calc in calcs.items():
        for kind, md in plans[label]:
            traj = out / f"{kind}_{label}.traj"
            if label == teacher:
                res = _teacher_run(
                    kind, start, calc, md, label, traj, teacher_cache, store, progress
                )
            else:
                res = run_md(start, calc, md, f"{label} {kind}", traj, progress)
            runs.setdefault(kind, {})[label] = res
            metrics["runs"].setdefault(kind, {})[label] = _series_metrics(res)
            if res.aborted:
                metrics["status"] = "aborted"
                metrics["aborted"] = f"{label} {kind} run: {res.aborted}"
                atomic_write_json(out / "metrics.json", metrics)
                raise ValidationAborted(
                    f"The {label} calculator raised during the {kind.upper()} run after "
                    f"{res.steps_done} steps ({res.aborted}). Partial trajectory: {traj}; "
                    f"metrics: {out / 'metrics.json'}."
                )
    return runs


def _labels(calc: Calculator, frame: Atoms) -> tuple[float, np.ndarray, np.ndarray | None]:
    """Energy, forces and (fully periodic frames) the Voigt stress of ``frame``."""
    atoms = frame.copy()
    atoms.calc = calc
    stress = atoms.get_stress() if atoms.pbc.all() else None
    return atoms.get_potential_energy(), atoms.get_forces(), stress


def relabel(
    frames: list[Atoms], student: Calculator, teacher: Calculator
) -> tuple[dict[str, Any], tuple[np.ndarray, ...] | None, list[float | None]]:
    """Force fidelity of the student on ``frames`` against the teacher.

    A frame that either calculator cannot evaluate (an exploded frame on which the teacher's
    SCF does not converge) is recorded in ``relabel_failures`` and skipped: it never costs the
    detected instability its report.

    Returns:
        The fidelity record, ``(student forces, teacher forces, numbers)`` for the plot
        (``None`` when no frame could be relabelled), and the teacher's energy of every frame
        (``None`` where it failed), so that later measures need not call the teacher again.
    """
    rows, failures = [], []
    teacher_energies: list[float | None] = [None] * len(frames)
    for k, frame in enumerate(frames):
        try:
            rows.append((*_labels(student, frame), *_labels(teacher, frame), frame))
            teacher_energies[k] = float(rows[-1][3])
        except Exception as exc:  # teacher or student cannot evaluate this frame
            failures.append({"frame": k, "error": f"{type(exc).__name__}: {exc}"[:300]})
    record: dict[str, Any] = {"frames_relabelled": len(rows), "relabel_failures": failures}
    if not rows:
        return record, None, teacher_energies
    pred_e, pred_f, pred_s, ref_e, ref_f, ref_s, used = zip(*rows)
    pf, rf = np.concatenate(pred_f), np.concatenate(ref_f)
    nu = np.concatenate([f.numbers for f in used])
    counts = np.array([len(f) for f in used])
    record.update(fidelity_report(pf, rf, nu, np.array(pred_e), np.array(ref_e), counts))
    # relative energies along the trajectory (offset removed): what MD actually sees
    de = (np.array(pred_e) - np.array(ref_e)) / counts
    record["relative_energy_mae_mev_per_atom"] = float(np.mean(np.abs(de - de.mean())) * 1000)
    if (molecular := molecular_force_fidelity(used, pred_f, ref_f)) is not None:
        record.update(molecular)
    if all(s is not None for s in pred_s):
        record.update(stress_errors(np.array(pred_s), np.array(ref_s)))
    return record, (pf, rf, nu), teacher_energies


def _nvt_energies(
    runs: dict[str, dict[str, MDResult]], student: str, every: int, energies: list[float | None]
) -> dict[int, float]:
    """Teacher energies :func:`relabel` computed on the student's NVT frames, by frame index.

    ``energies`` follows the relabelled frames: every ``every``-th frame of each run, kinds
    in the order of ``runs``.
    """
    start = 0
    for kind in runs:
        count = len(runs[kind][student].frames[::every])
        if kind == "nvt":
            chunk = energies[start : start + count]
            return {k * every: e for k, e in enumerate(chunk) if e is not None}
        start += count
    return {}


def ensemble_energy_gap(
    student: Calculator,
    teacher_run: MDResult,
    student_run: MDResult,
    teacher: Calculator,
    every: int,
    discard_ps: float,
    known_teacher_energies: dict[int, float] | None = None,
) -> dict[str, float]:
    """How much lower the student rates its own NVT ensemble than the teacher's, in meV/atom.

    ``gap = <E_s - E_t>_teacher frames - <E_s - E_t>_student frames`` (per atom, frames after
    ``discard_ps``, every ``every``-th). A constant energy offset cancels; a positive gap means
    the student puts the teacher's configurations higher, relative to its own, than the teacher
    does, so its MD favours its own structure (a gap of a few kT per box shifts the RDF). Force
    errors along one trajectory cannot show this: it is a difference between two ensembles.
    Teacher frames cost one student call each (the teacher energies are in its run), student
    frames one teacher call each, unless ``known_teacher_energies`` (student frame index ->
    teacher energy, e.g. from :func:`relabel`) already holds it.
    """
    known = known_teacher_energies or {}

    def teacher_energy(i: int) -> float:
        return known[i] if i in known else _labels(teacher, student_run.frames[i])[0]

    def offsets(run: MDResult, reference: Callable[[int], float]) -> np.ndarray:
        kept = [i for i, t in enumerate(run.time_ps) if t >= discard_ps][::every]
        return np.array([(_labels(student, run.frames[i])[0] - reference(i)) for i in kept])

    n = teacher_run.n_atoms
    on_teacher = offsets(teacher_run, lambda i: teacher_run.epot[i]) / n
    on_student = offsets(student_run, teacher_energy) / n
    return {
        "gap_mev_per_atom": float((on_teacher.mean() - on_student.mean()) * 1000),
        "offset_on_teacher_frames_mev_per_atom": float(on_teacher.mean() * 1000),
        "offset_on_student_frames_mev_per_atom": float(on_student.mean() * 1000),
        "teacher_frames": len(on_teacher),
        "student_frames": len(on_student),
    }


def stress_errors(student: np.ndarray, teacher: np.ndarray) -> dict[str, float]:
    """Stress MAE and pressure MAE / mean error in GPa (Voigt stresses in eV/A^3)."""
    gpa = 1.0 / units.GPa
    pressure = -(student[:, :3].mean(axis=1) - teacher[:, :3].mean(axis=1)) * gpa
    return {
        "stress_mae_gpa": float(np.mean(np.abs(student - teacher)) * gpa),
        "pressure_mae_gpa": float(np.mean(np.abs(pressure))),
        "pressure_mean_error_gpa": float(np.mean(pressure)),
        "teacher_mean_pressure_gpa": float(-np.mean(teacher[:, :3]) * gpa),
    }


def structure_analysis(
    runs: dict[str, dict[str, MDResult]],
    structure: Atoms,
    out: Path,
    names: dict[str, str],
    discard_ps: float = 0.0,
) -> tuple[dict[str, Any], dict[str, str]]:
    """RDF (periodic) or intramolecular distances, and bond lengths; returns metrics, figures.

    Frames of the first ``discard_ps`` of every run are left out (equilibration from a start
    made by another model).
    """
    figures: dict[str, str] = {}
    kind = "nvt" if "nvt" in runs else "nve"
    frames_by_label = {
        label: [f for f, t in zip(r.frames, r.time_ps) if t >= discard_ps] or r.frames
        for label, r in runs[kind].items()
    }
    if structure.pbc.all():
        curves = {label: rdf(frames) for label, frames in frames_by_label.items()}
        ylabel, name = "g(r)", "rdf"
    else:
        curves = {label: distance_histogram(frames) for label, frames in frames_by_label.items()}
        ylabel, name = "intramolecular distance distribution", "distances"
    x = next(iter(curves.values()))[0]
    figures["structure"] = plots.distribution_plot(
        x, {k: v[1] for k, v in curves.items()}, "r (A)", ylabel, out / f"{name}.png"
    )
    result: dict[str, Any] = {"kind": name, "ensemble": kind, "discarded_ps": discard_ps}
    teacher, student = names["teacher"], names["student"]
    if teacher in curves:
        result["h_error"] = h_error(x, curves[teacher][1], curves[student][1])
        if structure.pbc.all():
            result["partials"], partial_curves = partial_rdfs(frames_by_label, teacher, student)
            figures["partial_rdfs"] = plots.partial_rdf_plot(partial_curves, out / "rdf_pairs.png")
    bond_data = _bond_data(frames_by_label, structure)
    if bond_data:
        figures["bonds"] = plots.bond_histograms(bond_data, out / "bond_lengths.png")
        result["bond_length_mean_A"] = {
            pair: {label: float(np.mean(v)) for label, v in d.items()}
            for pair, d in bond_data.items()
        }
    return result, figures


def partial_rdfs(
    frames_by_label: dict[str, list[Atoms]], teacher: str, student: str
) -> tuple[dict[str, Any], dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]]:
    """g_ab(r) of every element pair: h on windows of the teacher's length, and the curves."""
    numbers = sorted(set(frames_by_label[student][0].numbers.tolist()))
    pairs = [(a, b) for i, a in enumerate(numbers) for b in numbers[i:]]
    metrics, curves = {}, {}
    for a, b in pairs:
        name = f"{chemical_symbols[a]}-{chemical_symbols[b]}"

        def curve(frames, pair=(a, b)):
            return rdf(frames, pair=pair)

        metrics[name] = windowed_h(frames_by_label[teacher], frames_by_label[student], curve)
        curves[name] = {label: curve(frames) for label, frames in frames_by_label.items()}
    return metrics, curves


def series_figures(runs: dict[str, dict[str, MDResult]], nvt_t: float, out: Path) -> dict:
    """Energy plots of every run and the NVT temperature plot."""
    figures = {}
    if "nve" in runs:
        figures["nve_energy"] = plots.energy_plot(runs["nve"], out / "nve_energy.png")
    if "nvt" in runs:
        figures["nvt_temperature"] = plots.temperature_plot(
            runs["nvt"], nvt_t, out / "nvt_temperature.png"
        )
        figures["nvt_energy"] = plots.energy_plot(runs["nvt"], out / "nvt_energy.png")
    return figures


def speed(runs: dict[str, dict[str, MDResult]], student: str, teacher: str) -> dict | None:
    """MD steps per second of student and teacher in the NVE run, and their ratio."""
    if "nve" not in runs or teacher not in runs["nve"]:
        return None
    s, t = runs["nve"][student], runs["nve"][teacher]
    return {
        "student_steps_per_second": s.steps_per_second,
        "teacher_steps_per_second": t.steps_per_second,
        "speedup": s.steps_per_second / t.steps_per_second,
    }


def force_r2_target(student: Calculator) -> tuple[float, str]:
    """The student's own force-R2 target from its model card, else the project default."""
    targets = (getattr(student, "card", None) or {}).get("targets") or {}
    target = (targets.get("force_r2") or {}).get("target")
    if target is None:
        return FIDELITY_GOAL_R2, "project default"
    return float(target), "model card"


def write_outputs(metrics: dict[str, Any], out: Path) -> None:
    """metrics.json and report.md (verdict included), each written atomically."""
    metrics["verdict"] = verdict(metrics, metrics["student"])
    atomic_write_json(out / "metrics.json", metrics)
    write_report(metrics, out / "report.md")


def validate(
    structure: Atoms,
    student: Calculator,
    teacher: Calculator,
    settings: ValidationSettings,
    out_dir: str | Path,
    student_name: str = "student",
    teacher_name: str = "teacher",
    structure_name: str = "structure",
    progress: bool = True,
    teacher_cache: dict[str, MDResult] | None = None,
    teacher_store: TeacherRunStore | None = None,
) -> dict[str, Any]:
    """Run NVE and NVT for student and teacher from one start; write the report folder.

    Steps: plan the runs, run them, write metrics and report (so a later failure cannot lose
    a detected instability), relabel the student's frames with the teacher, analyse structure
    and speed, write metrics and report again. ``teacher_cache`` (a dict kept by the caller)
    lets several students of one structure share the teacher's trajectories in a process;
    ``teacher_store`` keeps them on disk for every later process.

    Raises:
        ValidationAborted: a calculator raised mid-run (partial trajectory + metrics written).
    """
    settings.check()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = {"student": student_name, "teacher": teacher_name, "structure": structure_name}
    metrics = new_metrics(structure, settings, names)
    target, source = force_r2_target(student)
    metrics["targets"] = {"force_r2": target, "source": source, "drift": DRIFT_GOAL}
    calcs = {student_name: student}
    if settings.teacher_md:
        calcs[teacher_name] = teacher
    start = initial_velocities(structure, settings.temperature_K, settings.seed)
    plans = {student_name: plan_runs(settings), teacher_name: plan_runs(settings, True)}
    runs = run_all(plans, start, calcs, out, metrics, teacher_cache, progress, teacher_store)
    metrics["status"] = "relabelling"
    metrics["figures"] = {}
    write_outputs(metrics, out)

    every = settings.relabel_every
    sampled = [f for kind in runs for f in runs[kind][student_name].frames[::every]]
    metrics["force_fidelity"], pairs, teacher_energies = relabel(sampled, student, teacher)
    figures = metrics["figures"]
    if pairs is not None:
        f = metrics["force_fidelity"]
        title = (
            f"{student_name} vs {teacher_name} on {structure_name}: R2 {f['force_r2']:.4f}, "
            f"RMSE {f['force_rmse']:.3f} eV/A"
        )
        figures["force_analysis"] = plots.force_analysis(*pairs, out / "force_analysis.png", title)
    if "nvt" in runs and teacher_name in runs["nvt"]:
        metrics["ensemble_energy_gap"] = ensemble_energy_gap(
            student, runs["nvt"][teacher_name], runs["nvt"][student_name], teacher,
            every, settings.discard_ps, _nvt_energies(runs, student_name, every, teacher_energies),
        )  # fmt: skip
    nvt_md = dict(plans[student_name]).get("nvt")
    figures.update(series_figures(runs, nvt_md.temperature_K if nvt_md else 0.0, out))
    metrics["structure_metrics"], structure_figures = structure_analysis(
        runs, structure, out, names, settings.discard_ps
    )
    figures.update(structure_figures)
    if (sp := speed(runs, student_name, teacher_name)) is not None:
        metrics["speed"] = sp
    metrics["status"] = "complete"
    write_outputs(metrics, out)
    return metrics


def verdict(m: dict[str, Any], student: str) -> str:
    """One paragraph: stable? drift? fidelity?"""
    parts = []
    runs = m["runs"]
    unstable = [
        f"{k} ({v[student]['failure']} at {v[student]['failure_time_ps']:.3f} ps)"
        for k, v in runs.items()
        if not v[student]["stable"]
    ]
    parts.append(
        "Stable in every run." if not unstable else "UNSTABLE: " + "; ".join(unstable) + "."
    )
    if "nve" in runs and "drift_mev_per_atom_per_ps" in runs["nve"][student]:
        d = runs["nve"][student]["drift_mev_per_atom_per_ps"]
        ok = abs(d) <= DRIFT_GOAL
        parts.append(
            f"NVE drift {d:+.3f} meV/atom/ps ({'within' if ok else 'outside'} the "
            f"{DRIFT_GOAL} meV/atom/ps goal)."
        )
    f = m.get("force_fidelity")
    target = (m.get("targets") or {}).get("force_r2", FIDELITY_GOAL_R2)
    if f is None:
        parts.append("Forces not yet compared with the teacher.")
    elif "force_r2" not in f:
        parts.append("No frame of the student's trajectory could be relabelled by the teacher.")
    else:
        parts.append(
            f"Forces along the student's trajectory: R2 {f['force_r2']:.4f}, RMSE "
            f"{f['force_rmse']:.3f} eV/A, mean angle error {f['force_angle_deg']:.1f} deg "
            f"({'meets' if f['force_r2'] >= target else 'below'} this student's R2 target "
            f"{target})."
        )
    if f is not None and "molecular_net_force_r2" in f:
        parts.append(
            f"Net force on each molecule (the intermolecular force that sets the structure): "
            f"R2 {f['molecular_net_force_r2']:.3f}, RMSE {f['molecular_net_force_rmse']:.3f} "
            f"eV/A against {f['teacher_molecular_net_force_rms']:.3f} eV/A rms."
        )
    if f is not None and f.get("relabel_failures"):
        parts.append(f"{len(f['relabel_failures'])} frames could not be relabelled (recorded).")
    if "h_error" in m.get("structure_metrics", {}):
        h = m["structure_metrics"]["h_error"]
        parts.append(f"Structure error h = {h:.3f} vs the teacher.")
    if "ensemble_energy_gap" in m:
        gap = m["ensemble_energy_gap"]["gap_mev_per_atom"]
        parts.append(
            f"Ensemble energy gap {gap:+.2f} meV/atom (the student rates the teacher's NVT frames "
            "this much higher, relative to its own, than the teacher does)."
        )
    if "speed" in m:
        parts.append(f"{m['speed']['speedup']:.1f}x the teacher's MD speed on this machine.")
    return " ".join(parts)


def write_report(m: dict[str, Any], path: Path) -> None:
    """Markdown report embedding the figures."""
    lines = [
        f"# {m['student']} vs {m['teacher']} on {m['structure']} ({m['n_atoms']} atoms)",
        "",
        f"**Verdict.** {m['verdict']}",
        "",
        "| run | calculator | stable | drift (meV/atom/ps) | T mean/std (K) | steps/s |",
        "|---|---|---|---|---|---|",
    ]
    for kind, by in m["runs"].items():
        for label, r in by.items():
            drift = r.get("drift_mev_per_atom_per_ps")
            th = r.get("thermostat")
            stable = "yes" if r["stable"] else f"no: {r['failure'] or r['aborted']}"
            drift_text = "" if drift is None else f"{drift:+.4f}"
            temp_text = "" if th is None else f"{th['mean_K']:.0f} / {th['std_K']:.0f}"
            lines.append(
                f"| {kind} | {label} | {stable} | {drift_text} | {temp_text} | "
                f"{r['steps_per_second']:.1f} |"
            )
    lines += ["", "Numbers with units: `metrics.json`.", ""]
    for key, name in m["figures"].items():
        lines += [f"## {key.replace('_', ' ')}", "", f"![{key}]({name})", ""]
    path.write_text("\n".join(lines))
