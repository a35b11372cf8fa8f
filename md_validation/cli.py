"""``ase-distill validate``: several students x systems against one teacher."""

from __future__ import annotations

import argparse
from pathlib import Path

from ase_distill.md import ENSEMBLES


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of the validate sub-command."""
    p.add_argument("--student", nargs="+", default=["tiny"], help="shipped names or checkpoints")
    p.add_argument("--teacher", default="gfn2-xtb", help="teacher name (see training.teachers)")
    p.add_argument(
        "--structure", nargs="+", default=["aspirin"], help="ASE name, file or smiles:..."
    )
    p.add_argument("--nve-ps", type=float, default=1.0)
    p.add_argument("--nvt-ps", type=float, default=1.0)
    p.add_argument("--temperature", type=float, default=300.0, help="K (start and NVT target)")
    p.add_argument("--nvt-temperature", type=float, default=None, help="K, if not --temperature")
    p.add_argument("--thermostat", choices=[e for e in ENSEMBLES if e != "nve"], default="langevin")
    p.add_argument("--timestep", type=float, default=0.5, help="fs")
    p.add_argument("--interval", type=int, default=10, help="record every N steps")
    p.add_argument("--relabel-every", type=int, default=5, help="teacher relabels every k-th frame")
    p.add_argument("--no-teacher-md", action="store_true", help="skip the teacher's own MD")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default="reports/validation")
    p.add_argument("--quiet", action="store_true")


def _student(name: str):
    from ase_distill import DistilledCalculator

    return DistilledCalculator(name)  # a shipped name or a file (ase_distill.resolve_student)


def run_from_args(args: argparse.Namespace) -> int:
    """Run the validation described by parsed arguments; print where the reports are."""
    from md_validation.suite import ValidationSettings, validate
    from training.structures import load_structure
    from training.teachers import make_teacher

    settings = ValidationSettings(
        temperature_K=args.temperature,
        nve_ps=args.nve_ps,
        nvt_ps=args.nvt_ps,
        timestep_fs=args.timestep,
        nvt_temperature_K=args.nvt_temperature,
        thermostat=args.thermostat,
        interval=args.interval,
        relabel_every=args.relabel_every,
        seed=args.seed,
        teacher_md=not args.no_teacher_md,
    )
    settings.check()
    structures = [load_structure(s) for s in args.structure]
    teacher = make_teacher(args.teacher).calculator
    students = {s: _student(s) for s in args.student}
    for sname, atoms in structures:
        teacher_runs: dict = {}  # the teacher's trajectories, shared by all students
        for student_name, calc in students.items():
            label = Path(student_name).stem
            out = Path(args.output) / f"{sname}_{label}"
            m = validate(
                atoms,
                calc,
                teacher,
                settings,
                out,
                label,
                args.teacher,
                sname,
                progress=not args.quiet,
                teacher_cache=teacher_runs,
            )
            print(f"[{label} on {sname}] {m['verdict']}")
            print(f"  report: {out / 'report.md'}")
    return 0
