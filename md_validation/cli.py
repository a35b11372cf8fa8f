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
        "--teacher-device",
        default=None,
        help="device of a torch teacher (SevenNet, Orb), e.g. cuda; stored teacher runs are "
        "shared across devices",
    )
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
    p.add_argument("--teacher-nve-ps", type=float, default=None, help="teacher NVE (default: same)")
    p.add_argument("--teacher-nvt-ps", type=float, default=None, help="teacher NVT (default: same)")
    p.add_argument(
        "--teacher-runs",
        default=None,
        help="folder of finished teacher trajectories, reused by later runs "
        "(default: OUTPUT/teacher_runs)",
    )
    p.add_argument(
        "--discard-ps", type=float, default=0.0, help="equilibration left out of the RDFs (ps)"
    )
    p.add_argument("--npt-structure", help="periodic box for the student's NPT density run")
    p.add_argument(
        "--npt-only", action="store_true", help="only the NPT density run (no NVE/NVT validation)"
    )
    p.add_argument(
        "--npt-fast",
        action="store_true",
        help="NPT with the compiled float32 path (fast=True): density needs no float64",
    )
    p.add_argument("--npt-ps", type=float, default=10.0, help="length of the NPT run (ps)")
    p.add_argument(
        "--teacher-only",
        action="store_true",
        help="only run (and store) the teacher's trajectories, e.g. in the background",
    )
    p.add_argument(
        "--teacher-budget-s",
        type=float,
        help="with --teacher-only: stop each teacher run after this many seconds of MD and store "
        "it; the same command continues it (e.g. a lent GPU's fixed minutes)",
    )
    p.add_argument(
        "--teacher-mts",
        metavar="STUDENT",
        help="with --teacher-only: teacher dynamics by multiple time stepping (r-RESPA), this "
        "student the fast force and the teacher's correction every --teacher-mts-steps steps "
        "(md_validation.mts); stored under its own name",
    )
    p.add_argument(
        "--teacher-mts-steps", type=int, default=4, help="inner steps per teacher call (k)"
    )
    p.add_argument(
        "--fast",
        action="store_true",
        help="students run through the compiled float32 path (fast=True); recorded in settings",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default="reports/validation")
    p.add_argument("--overwrite", action="store_true", help="replace finished reports in --output")
    p.add_argument("--quiet", action="store_true")


def check_reports_free(folders: list[Path], overwrite: bool) -> None:
    """Refuse to start when a report folder already holds a finished validation.

    Raises:
        ValueError: names the folders and the two ways on (``--overwrite``, another output).
    """
    import json

    finished = []
    for folder in folders:
        metrics, density = folder / "metrics.json", folder / "density.json"
        done = metrics.is_file() and json.loads(metrics.read_text()).get("status") == "complete"
        if done or density.is_file():  # an NPT run writes density.json once, when it ends
            finished.append(str(folder))
    if finished and not overwrite:
        raise ValueError(
            f"{', '.join(finished)} already hold finished validation reports; pass --overwrite "
            "to replace them or choose another --output."
        )


def _student(name: str, fast: bool = False):
    from ase_distill import DistilledCalculator

    # a shipped name or a file (ase_distill.resolve_student)
    return DistilledCalculator(name, fast=fast)


def _mts_teacher(args: argparse.Namespace, teacher):
    """The r-RESPA teacher of ``--teacher-mts`` and the name its runs are stored under.

    Raises:
        ValueError: without ``--teacher-only`` (a validation relabels with the plain teacher
            and compares with its plain dynamics), or for an unstable outer step.
    """
    from md_validation.mts import ImpulseMTS, check_outer_step, mts_teacher_label

    if not args.teacher_only:
        raise ValueError(
            "--teacher-mts makes stored teacher runs only: add --teacher-only, then compare the "
            "runs with `python -m md_validation.compare_rdf`."
        )
    check_outer_step(args.teacher_mts_steps, args.timestep)
    fast = _student(args.teacher_mts, args.fast)
    label = mts_teacher_label(args.teacher, Path(args.teacher_mts).stem, args.teacher_mts_steps)
    return ImpulseMTS(fast, teacher, args.teacher_mts_steps), label


def run_from_args(args: argparse.Namespace) -> int:
    """Run the validation described by parsed arguments; print where the reports are."""
    from md_validation.runner import TeacherRunStore
    from md_validation.suite import ValidationSettings, validate
    from training.structures import load_structure
    from training.teachers import is_torch_teacher, make_teacher

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
        teacher_nve_ps=args.teacher_nve_ps,
        teacher_nvt_ps=args.teacher_nvt_ps,
        discard_ps=args.discard_ps,
        student_fast=args.fast,
    )
    settings.check()
    if args.teacher_budget_s is not None and not args.teacher_only:
        raise ValueError(
            "--teacher-budget-s stops teacher runs short, which a validation cannot compare: "
            "add --teacher-only (the stored runs then serve later validations)."
        )
    if args.npt_only and not args.npt_structure:
        raise ValueError("--npt-only needs --npt-structure (a periodic box).")
    structures = [load_structure(s) for s in args.structure]
    if args.teacher_device and not is_torch_teacher(args.teacher):
        raise ValueError(
            f"--teacher-device applies to torch teachers (SevenNet, Orb); {args.teacher} runs on "
            "the CPU: leave --teacher-device out."
        )
    teacher_options = {"device": args.teacher_device} if args.teacher_device else {}
    teacher = make_teacher(args.teacher, **teacher_options).calculator
    store = TeacherRunStore(args.teacher_runs or Path(args.output) / "teacher_runs")
    if args.teacher_mts:
        teacher, name = _mts_teacher(args, teacher)
        return teacher_only(structures, teacher, name, settings, store, not args.quiet,
                            args.teacher_budget_s)  # fmt: skip
    if args.teacher_only:
        return teacher_only(structures, teacher, args.teacher, settings, store, not args.quiet,
                            args.teacher_budget_s)  # fmt: skip
    planned = [] if args.npt_only else structures
    folders = [
        Path(args.output) / f"{sname}_{Path(student).stem}"
        for sname, _ in planned
        for student in args.student
    ]
    if args.npt_structure:
        nname = load_structure(args.npt_structure)[0]
        folders += [Path(args.output) / f"{nname}_{Path(s).stem}_npt" for s in args.student]
    check_reports_free(folders, args.overwrite)
    students = {s: _student(s, args.fast) for s in args.student}
    for sname, atoms in planned:
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
                teacher_store=store,
            )
            print(f"[{label} on {sname}] {m['verdict']}")
            print(f"  report: {out / 'report.md'}")
    if args.npt_structure:
        from md_validation.density import npt_density

        nname, box = load_structure(args.npt_structure)
        for student_name, calc in students.items():
            if args.npt_fast:
                from ase_distill import DistilledCalculator

                calc = DistilledCalculator(student_name, fast=True)
            label = Path(student_name).stem
            out = Path(args.output) / f"{nname}_{label}_npt"
            d = npt_density(box, calc, out, args.temperature, args.npt_ps, args.timestep,
                            seed=args.seed, progress=not args.quiet)  # fmt: skip
            print(f"[{label} NPT on {nname}] density {d['density_g_cm3']:.3f} +- "
                  f"{d['density_std_g_cm3']:.3f} g/cm3 ({out / 'density.json'})")  # fmt: skip
    return 0


def teacher_only(
    structures, teacher, teacher_name, settings, store, progress, time_budget_s=None
) -> int:
    """Run and store the teacher's trajectories of every structure (no student).

    With ``time_budget_s``, each run stops after that many seconds of MD and is stored short of
    its length; the same call continues it.
    """
    from md_validation.runner import initial_velocities
    from md_validation.suite import _teacher_run, plan_runs

    for sname, atoms in structures:
        start = initial_velocities(atoms, settings.temperature_K, settings.seed)
        for kind, md in plan_runs(settings, for_teacher=True):
            traj = store.folder / f"running_{sname}_{kind}.traj"
            store.folder.mkdir(parents=True, exist_ok=True)
            res = _teacher_run(kind, start, teacher, md, teacher_name, traj, None, store,
                               progress, time_budget_s)  # fmt: skip
            traj.unlink(missing_ok=True)  # the store keeps its own copy
            print(
                f"[{teacher_name} on {sname}] {kind}: {res.steps_done} of {md.steps} steps "
                f"({res.steps_done * md.timestep_fs / 1000:.3f} ps), stored in {store.folder}"
            )
    return 0
