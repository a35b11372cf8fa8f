"""``ase-distill`` command line: a thin dispatcher over generate, train, validate and export.

Each sub-command's module is imported only when that sub-command runs (``validate`` brings its
arguments from :mod:`md_validation.cli`), so the three packages keep their one-way imports:
``ase_distill`` imports neither other package, ``md_validation`` may use ``training``, and
nothing here is imported by either.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML or TOML run config (sections generate / train)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value, e.g. --set train.epochs=50 (repeatable)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _overrides(args: argparse.Namespace, section: str, names: Sequence[str]) -> list[str]:
    extra = list(args.overrides)
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            extra.append(f"{section}.{name}={json.dumps(value)}")
    return extra


def cmd_generate(args: argparse.Namespace) -> int:
    """Label seed structures with a teacher."""
    from training.config import load_config
    from training.generate import generate

    overrides = _overrides(args, "generate", ["teacher", "output", "workers", "seeds"])
    config = load_config(args.config, overrides).generate
    summary = generate(config, progress=not args.quiet)
    if summary.get("complete"):
        print(
            f"dataset: {config.output}/dataset.xyz  frames {summary['frames']}  splits "
            f"{summary['splits']}  failures {summary['failures']}  "
            f"teacher {summary['teacher']['name']}"
        )
    else:
        print(f"generation stopped after {summary['tasks_done']}/{summary['tasks']} tasks")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train a student on a generated dataset."""
    from training.config import load_config
    from training.train import train

    names = ["dataset", "output", "size", "epochs", "threads", "device"]
    overrides = _overrides(args, "train", names)
    config = load_config(args.config, overrides).train
    summary = train(config, resume=args.resume, progress=not args.quiet, overwrite=args.overwrite)
    for split, m in summary["metrics"].items():
        print(
            f"{split:>14}: force RMSE {m['force_rmse']:.4f} eV/A  R2 {m['force_r2']:.4f}  "
            f"angle {m['force_angle_deg']:.1f} deg  energy MAE "
            f"{m['energy_mae_mev_per_atom']:.2f} meV/atom"
        )
    print(f"student: {summary['best']}  (DistilledCalculator.from_checkpoint)")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """MD validation of a student against its teacher."""
    from md_validation.cli import run_from_args

    return run_from_args(args)


def cmd_export(args: argparse.Namespace) -> int:
    """Export a student to TorchScript or ONNX."""
    from ase_distill.export import export_cli

    return export_cli(args)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``ase-distill``.

    Args:
        command: the sub-command that will run; only its module's arguments are imported.
    """
    from ase_distill.family import size_names

    parser = argparse.ArgumentParser(prog="ase-distill", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="teacher-labelled data: MD, rattles, relaxations")
    _common(g)
    g.add_argument("--teacher", help="teacher name or module:Class (see training.teachers)")
    g.add_argument("--output", help="output folder (resumes if it holds a run)")
    g.add_argument("--workers", type=int, help="parallel teacher processes")
    g.add_argument("--seeds", nargs="+", help="seed structures: ASE names, files, smiles:...")
    g.set_defaults(func=cmd_generate)

    t = sub.add_parser("train", help="train a student on a generated dataset")
    _common(t)
    t.add_argument("--dataset", help="dataset.xyz written by generate")
    t.add_argument("--output", help="run folder")
    t.add_argument("--size", choices=size_names())
    t.add_argument("--epochs", type=int)
    t.add_argument("--threads", type=int, help="torch CPU threads (0: torch's default)")
    t.add_argument("--device", help="torch device to train on: cpu (default), cuda, cuda:1")
    t.add_argument("--resume", action="store_true", help="continue from OUTPUT/last.pt")
    t.add_argument(
        "--overwrite", action="store_true", help="replace a run already in OUTPUT (else refused)"
    )
    t.set_defaults(func=cmd_train)

    x = sub.add_parser(
        "export", help="export a student: TorchScript, ONNX, or metatomic (LAMMPS, i-PI, TorchSim)"
    )
    x.add_argument("--student", default="tiny", help="shipped name or checkpoint path")
    x.add_argument("--format", choices=["torchscript", "onnx", "metatomic"], required=True)
    x.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    x.add_argument("-o", "--output", required=True, help="output file (.ts, .onnx or .pt)")
    x.add_argument(
        "--committee", nargs="+", help="metatomic only: several students, with energy_uncertainty"
    )
    x.set_defaults(func=cmd_export)

    d = sub.add_parser("distil", help="on-policy distillation rounds (committee-selected MD)")
    d.add_argument("--dataset", required=True, help="dataset.xyz written by generate")
    d.add_argument("--teacher", required=True, help="teacher name (see training.teachers)")
    d.add_argument("--output", required=True, help="rounds folder (resumes if it holds some)")
    d.add_argument("--size", choices=size_names(), default="ultra-tiny")
    for name, kind in (
        ("committee", int),
        ("rounds", int),
        ("epochs", int),
        ("md-runs", int),
        ("md-steps", int),
        ("select", int),
        ("threads", int),
        ("seed", int),
    ):
        d.add_argument(f"--{name}", type=kind)  # fmt: skip
    d.add_argument("--init-from", help="round 0 starts from this student (name or checkpoint)")
    d.add_argument("--new-seeds", help="extxyz of unlabelled start structures to explore")
    d.add_argument(
        "--train-set", action="append", default=[], metavar="KEY=VALUE",
        help="a TrainConfig field for every member's training (repeatable)",
    )  # fmt: skip
    d.set_defaults(func=cmd_distil)

    c = sub.add_parser(
        "compile", help="build the cached compiled packages of students (compile=True, fast=True)"
    )
    c.add_argument("students", nargs="+", help="shipped names or checkpoint paths")
    c.add_argument(
        "--dtype", nargs="+", choices=["float64", "float32"], default=["float64", "float32"]
    )
    c.add_argument("--stress", action="store_true", help="also the packages with stress")
    c.set_defaults(func=cmd_compile)

    v = sub.add_parser("validate", help="NVE/NVT of student vs teacher, metrics and plots")
    if command == "validate":
        from md_validation.cli import add_arguments

        add_arguments(v)
    v.set_defaults(func=cmd_validate)
    return parser


def cmd_distil(args: argparse.Namespace) -> int:
    """Run (or resume) on-policy distillation rounds."""
    from training.onpolicy import OnPolicyRun, OnPolicySettings

    chosen = {
        key: value
        for key in ("committee", "rounds", "epochs", "md_runs", "md_steps", "select", "threads")
        + ("seed",)
        if (value := getattr(args, key)) is not None
    }
    settings = OnPolicySettings(
        dataset=args.dataset,
        teacher=args.teacher,
        output=args.output,
        size=args.size,
        init_from=args.init_from or "",
        new_seeds=args.new_seeds or "",
        train=_key_values(args.train_set),
        **chosen,
    )
    OnPolicyRun(settings).run()
    return 0


def _key_values(items: list[str]) -> dict:
    """``["lr=3e-4", ...]`` -> ``{"lr": 0.0003}`` (values read as YAML scalars)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--train-set takes KEY=VALUE, got {item!r}.")
        out[key.strip()] = yaml.safe_load(value)
    return out


def cmd_compile(args: argparse.Namespace) -> int:
    """Build (or find) each student's compiled packages; print where they are."""
    import torch

    from ase_distill.compiled import cache_dir, compiled_potential
    from ase_distill.registry import resolve_student

    for name in args.students:
        model, _ = resolve_student(name)
        for dtype in args.dtype:
            for stress in (False, True) if args.stress else (False,):
                compiled_potential(model, getattr(torch, dtype), stress)
                print(f"{name}: {dtype} package{' with stress' if stress else ''} ready")
    print(f"compiled packages are cached in {cache_dir()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ase-distill`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        print(f"ase-distill {args.command}: error: {exc}", file=sys.stderr)
        return 2


def console_main() -> int:
    """The ``ase-distill`` program: :func:`main` in a process tuned for repeated force calls.

    The program owns its process, so it keeps freed memory for reuse
    (:func:`ase_distill.tuning.reuse_freed_memory`; the library itself never does). Measured on
    96 atoms of water, one thread: glibc otherwise maps and faults in ~47 MB of fresh pages per
    water-tiny call and ~530 MB per SevenNet-0 call, a third or more of the time on page faults
    under load. ``ASE_DISTILL_SYSTEM_MALLOC=1`` leaves the allocator as it is.
    """
    import os

    from ase_distill.tuning import reuse_freed_memory

    if os.environ.get("ASE_DISTILL_SYSTEM_MALLOC", "") in ("", "0"):
        reuse_freed_memory()
    return main()


if __name__ == "__main__":
    sys.exit(console_main())
