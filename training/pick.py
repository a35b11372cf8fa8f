"""Pick one of several finished training runs by a validation metric, under a constraint.

``python -m training.pick BASELINE RUN [RUN ...] [--by force_angle_deg] [--keep
energy_mae_mev_per_atom]`` reads each run's ``summary.json`` (its best model's metrics on the
whole validation split) and prints the run of least ``--by`` among those whose ``--keep``
metrics are no worse than ``BASELINE``'s (a run directory, its ``summary.json`` or a student
card), one line per run, then ``picked: RUN`` (or ``picked: none``). The choice uses validation
numbers only, so that a held-out set judges the pick rather than making it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


class PickError(ValueError):
    """A run is unfinished or lacks a metric."""


def validation_metrics(run: str | Path) -> dict[str, float]:
    """Validation metrics of a finished run (directory, summary.json) or of a student card."""
    path = Path(run)
    path = path / "summary.json" if path.is_dir() else path
    if not path.is_file():
        raise PickError(f"{path} does not exist: the run is unfinished (train it to the end).")
    return json.loads(path.read_text())["metrics"]["validation"]


def pick(baseline: str, runs: list[str], by: str, keep: list[str]) -> tuple[str | None, list]:
    """The run of least ``by`` among those no worse than ``baseline`` on ``keep``, and a table."""
    base = validation_metrics(baseline)
    rows = []
    for run in runs:
        metrics = validation_metrics(run)
        missing = [k for k in [by, *keep] if k not in metrics]
        if missing:
            raise PickError(f"{run}: no validation {', '.join(missing)} in its summary.")
        allowed = all(metrics[k] <= base[k] for k in keep)
        rows.append((run, metrics[by], {k: metrics[k] for k in keep}, allowed))
    allowed_rows = [row for row in rows if row[3]]
    best = min(allowed_rows, key=lambda row: row[1])[0] if allowed_rows else None
    return best, rows


def main(argv: list[str] | None = None) -> None:
    """Command line: print each run's metrics and the pick."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("baseline", help="the run (or summary.json) to be no worse than")
    parser.add_argument("runs", nargs="+", help="finished run directories")
    parser.add_argument("--by", default="force_angle_deg", help="validation metric to minimise")
    parser.add_argument(
        "--keep", nargs="*", default=["energy_mae_mev_per_atom"],
        help="validation metrics that must not exceed the baseline's",
    )  # fmt: skip
    args = parser.parse_args(argv)
    best, rows = pick(args.baseline, args.runs, args.by, args.keep)
    base = validation_metrics(args.baseline)
    print(f"baseline {args.baseline}: {args.by} {base[args.by]:.4f}  "
          + "  ".join(f"{k} {base[k]:.4f}" for k in args.keep))  # fmt: skip
    for run, value, kept, allowed in rows:
        print(f"{run}: {args.by} {value:.4f}  "
              + "  ".join(f"{k} {v:.4f}" for k, v in kept.items())
              + ("" if allowed else "  (worse than the baseline: not eligible)"))  # fmt: skip
    print(f"picked: {best or 'none'}")


if __name__ == "__main__":
    main()
