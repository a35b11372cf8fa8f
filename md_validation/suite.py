"""Student vs teacher MD validation: runs, metrics.json, plots and report.md in one folder."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
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
    rdf,
    thermostat_stats,
)
from md_validation.runner import MDResult, MDSettings, initial_velocities, run_md

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

    def steps(self, ps: float) -> int:
        """Number of steps for ``ps`` picoseconds."""
        return int(round(ps * 1000.0 / self.timestep_fs))

    def check(self) -> None:
        """Raise ``ValueError`` for impossible settings."""
        if self.temperature_K < 0 or (self.nvt_temperature_K or 0) < 0:
            raise ValueError("temperature must be >= 0 K.")
        if self.steps(self.nve_ps) <= 0 and self.steps(self.nvt_ps) <= 0:
            raise ValueError("zero steps: give --nve-ps and/or --nvt-ps larger than the time step.")
        if self.relabel_every <= 0:
            raise ValueError("relabel_every must be positive.")


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
) -> dict[str, Any]:
    """Run NVE and NVT for student and teacher from one start; write the report folder.

    ``teacher_cache`` (a dict kept by the caller) lets several students of one structure share
    the teacher's trajectories: same start, same velocities, same settings, same trajectory.

    Raises:
        ValidationAborted: a calculator raised mid-run (partial trajectory + metrics written).
    """
    settings.check()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = initial_velocities(structure, settings.temperature_K, settings.seed)
    calcs = {student_name: student}
    if settings.teacher_md:
        calcs[teacher_name] = teacher
    nvt_t = (
        settings.nvt_temperature_K
        if settings.nvt_temperature_K is not None
        else settings.temperature_K
    )
    plans = []
    if settings.steps(settings.nve_ps) > 0:
        plans.append(
            (
                "nve",
                MDSettings(
                    "nve",
                    settings.temperature_K,
                    settings.timestep_fs,
                    settings.steps(settings.nve_ps),
                    settings.interval,
                    seed=settings.seed,
                ),
            )
        )
    if settings.steps(settings.nvt_ps) > 0:
        plans.append(
            (
                "nvt",
                MDSettings(
                    settings.thermostat,
                    nvt_t,
                    settings.timestep_fs,
                    settings.steps(settings.nvt_ps),
                    settings.interval,
                    seed=settings.seed,
                ),
            )
        )
    runs: dict[str, dict[str, MDResult]] = {}
    metrics: dict[str, Any] = {
        "status": "running",
        "structure": structure_name,
        "n_atoms": len(structure),
        "student": student_name,
        "teacher": teacher_name,
        "settings": asdict(settings),
        "machine": {"platform": platform.platform(), "processor": platform.processor()},
        "units": {
            "drift_mev_per_atom_per_ps": "meV/atom/ps",
            "max_deviation_mev_per_atom": "meV/atom",
            "drift_ratio": "dimensionless",
            "steps_per_second": "1/s",
            "force_rmse": "eV/A",
            "force_mae": "eV/A",
            "force_angle_deg": "degree",
            "energy_mae_mev_per_atom": "meV/atom",
            "temperature": "K",
            "h_error": "dimensionless (integrated |g_student - g_teacher| / integrated g_teacher)",
        },
        "runs": {},
    }
    for kind, md in plans:
        for label, calc in calcs.items():
            shared = label == teacher_name and teacher_cache is not None
            if shared and kind in teacher_cache:
                res = teacher_cache[kind]
            else:
                traj = out / f"{kind}_{label}.traj"
                res = run_md(start, calc, md, f"{label} {kind}", traj, progress)
                if shared and not res.aborted:
                    teacher_cache[kind] = res
            runs.setdefault(kind, {})[label] = res
            metrics["runs"].setdefault(kind, {})[label] = _series_metrics(res)
            if res.aborted:
                metrics["status"] = "aborted"
                metrics["aborted"] = f"{label} {kind} run: {res.aborted}"
                atomic_write_json(out / "metrics.json", metrics)
                raise ValidationAborted(
                    f"The {label} calculator raised during the {kind.upper()} run after "
                    f"{res.steps_done} steps ({res.aborted}). Partial trajectory: "
                    f"{out / f'{kind}_{label}.traj'}; metrics: {out / 'metrics.json'}."
                )

    # force fidelity along the student's own trajectories
    sampled = [
        f for kind in runs for f in runs[kind][student_name].frames[:: settings.relabel_every]
    ]
    pred_f, ref_f, pred_e, ref_e, nums, counts = [], [], [], [], [], []
    for frame in sampled:
        a = frame.copy()
        a.calc = student
        pred_f.append(a.get_forces())
        pred_e.append(a.get_potential_energy())
        b = frame.copy()
        b.calc = teacher
        ref_f.append(b.get_forces())
        ref_e.append(b.get_potential_energy())
        nums.append(frame.numbers)
        counts.append(len(frame))
    pf, rf, nu = np.concatenate(pred_f), np.concatenate(ref_f), np.concatenate(nums)
    fidelity = fidelity_report(pf, rf, nu, np.array(pred_e), np.array(ref_e), np.array(counts))
    # relative energies along the trajectory (offset removed): what MD actually sees
    de = (np.array(pred_e) - np.array(ref_e)) / np.array(counts)
    fidelity["relative_energy_mae_mev_per_atom"] = float(np.mean(np.abs(de - de.mean())) * 1000)
    fidelity["frames_relabelled"] = len(sampled)
    metrics["force_fidelity"] = fidelity

    figures = {}
    figures["force_analysis"] = plots.force_analysis(
        pf,
        rf,
        nu,
        out / "force_analysis.png",
        f"{student_name} vs {teacher_name} on {structure_name}: R2 {fidelity['force_r2']:.4f}, "
        f"RMSE {fidelity['force_rmse']:.3f} eV/A",
    )
    if "nve" in runs:
        figures["nve_energy"] = plots.energy_plot(runs["nve"], out / "nve_energy.png")
    if "nvt" in runs:
        figures["nvt_temperature"] = plots.temperature_plot(
            runs["nvt"], nvt_t, out / "nvt_temperature.png"
        )
        figures["nvt_energy"] = plots.energy_plot(runs["nvt"], out / "nvt_energy.png")
    # structure from the NVT runs (or NVE when no NVT)
    struct_kind = "nvt" if "nvt" in runs else "nve"
    frames_by_label = {label: r.frames for label, r in runs[struct_kind].items()}
    if structure.pbc.all():
        curves = {label: rdf(frames) for label, frames in frames_by_label.items()}
        xlabel, ylabel, name = "r (A)", "g(r)", "rdf"
    else:
        curves = {label: distance_histogram(frames) for label, frames in frames_by_label.items()}
        xlabel, ylabel, name = "r (A)", "intramolecular distance distribution", "distances"
    x = next(iter(curves.values()))[0]
    figures["structure"] = plots.distribution_plot(
        x, {k: v[1] for k, v in curves.items()}, xlabel, ylabel, out / f"{name}.png"
    )
    structure_metrics: dict[str, Any] = {"kind": name, "ensemble": struct_kind}
    if teacher_name in curves:
        structure_metrics["h_error"] = h_error(x, curves[teacher_name][1], curves[student_name][1])
    bond_data = _bond_data(frames_by_label, structure)
    if bond_data:
        figures["bonds"] = plots.bond_histograms(bond_data, out / "bond_lengths.png")
        structure_metrics["bond_length_mean_A"] = {
            pair: {label: float(np.mean(v)) for label, v in d.items()}
            for pair, d in bond_data.items()
        }
    metrics["structure_metrics"] = structure_metrics

    if "nve" in runs and teacher_name in runs["nve"]:
        s, t = runs["nve"][student_name], runs["nve"][teacher_name]
        metrics["speed"] = {
            "student_steps_per_second": s.steps_per_second,
            "teacher_steps_per_second": t.steps_per_second,
            "speedup": s.steps_per_second / t.steps_per_second,
        }
    metrics["figures"] = figures
    metrics["verdict"] = verdict(metrics, student_name)
    metrics["status"] = "complete"
    atomic_write_json(out / "metrics.json", metrics)
    write_report(metrics, out / "report.md")
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
    f = m["force_fidelity"]
    parts.append(
        f"Forces along the student's trajectory: R2 {f['force_r2']:.4f}, RMSE "
        f"{f['force_rmse']:.3f} eV/A, mean angle error {f['force_angle_deg']:.1f} deg "
        f"({'meets' if f['force_r2'] >= FIDELITY_GOAL_R2 else 'below'} the R2 "
        f"{FIDELITY_GOAL_R2} bar)."
    )
    if "h_error" in m.get("structure_metrics", {}):
        h = m["structure_metrics"]["h_error"]
        parts.append(f"Structure error h = {h:.3f} vs the teacher.")
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


def to_json(obj: Any) -> str:
    """JSON of metrics (helper for printing)."""
    return json.dumps(obj, indent=2)
