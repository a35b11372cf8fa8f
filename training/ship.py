"""Ship a trained run as a named student: ``python -m training.ship runs/tiny/best tiny``.

Copies the checkpoint into ``ase_distill/students/NAME.{pt,json}`` with the card's name and a
plain statement of provenance (teacher, data, training) taken from the run itself; refuses a
card without metrics, so untrained weights can never ship under a name.

``python -m training.ship --remeasure CHECKPOINT DATASET OUT "why"`` writes ``OUT.{pt,json}``:
the same weights with the card's metrics measured again on another dataset (its held-out
molecules changed), ready to ship under the same name.

``python -m training.ship --ablation NAME REPORT CHECKPOINT=LABEL ...`` puts on a shipped card
the held-out numbers of the steps that made it (or were tried), read from a report of
``python -m training.heldout``: each card carries its own energy ablation.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ase_distill.checkpoint import load_checkpoint, save_checkpoint
from ase_distill.family import describe, higher_is_better, member
from ase_distill.registry import canonical_name, students_dir
from training.lineage import total_seconds, training_stages


def target_status(name: str, metrics: dict) -> dict:
    """Each target of the family table against the measured held-out value, and whether met.

    A ratio target ``METRIC_vs_MEMBER`` divides this card's METRIC by the shipped MEMBER
    card's on the same split (unmeasured when that card lacks it).
    """
    family, m = member(name)
    measured = metrics.get(family.target_split, {})
    out = {"evaluated_on": family.target_split}
    for key, target in m.targets.items():
        metric, _, other = key.partition("_vs_")
        value = measured.get(metric)
        if other and value is not None:
            theirs = shipped_metric(other, family.target_split, metric)
            value = value / theirs if theirs else None
        met = value is not None and (value >= target if higher_is_better(key) else value <= target)
        out[key] = {"target": target, "measured": value, "met": bool(met)}
        if other:
            out[key]["relative_to"] = other
    return out


def shipped_metric(name: str, split: str, metric: str) -> float | None:
    """``metric`` on ``split`` from the shipped card of ``name``, or None where it has none."""
    path = students_dir() / f"{canonical_name(name)}.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("metrics", {}).get(split, {}).get(metric)


def add_stages(card: dict) -> None:
    """Give ``card`` its training stages and their summed time, in place.

    Cards written before stages were recorded gain them here, as far back as the earlier
    stages' cards still exist.
    """
    training = card.setdefault("training", {})
    training["stages"] = training_stages(card)
    training["stages_seconds"] = total_seconds(training["stages"])


def ship(run_checkpoint: str | Path, name: str, note: str | None = None) -> Path:
    """Copy a trained checkpoint into the package under ``name``; returns the card path.

    Raises:
        ValueError: unknown name, or a checkpoint without held-out metrics.
    """
    key = canonical_name(name)
    model, card = load_checkpoint(run_checkpoint)
    metrics = card.get("metrics") or {}
    if not metrics or "teacher" not in card:
        raise ValueError(
            f"{run_checkpoint} has no evaluation metrics or teacher in its card: only finished "
            "training runs (`ase-distill train`) can be shipped."
        )
    teacher = card["teacher"]
    data = card.get("training_data", {})
    frames = data.get("frames", {})
    card["name"] = key
    card["description"] = describe(key, model.count_parameters())
    species = "".join(card.get("species", []))
    card["provenance"] = (
        f"Distilled from {teacher.get('name')} ({teacher.get('package', '')} "
        f"{teacher.get('version', '')}) on {sum(frames.values())} teacher-labelled frames of "
        f"{len(data.get('molecules') or [])} {species} seed structures; "
        f"{len(data.get('holdout_molecules') or [])} held out whole for testing."
    )
    if not str(teacher.get("name", "")).startswith("orb"):
        card["provenance"] += " The teacher is not Orb (no Orb weights were used)."
    card["targets"] = target_status(key, metrics)
    add_stages(card)
    if note:
        card.setdefault("training", {})["note"] = note
    return save_checkpoint(model, students_dir() / key, card)


def remeasure(checkpoint: str | Path, dataset: str | Path, out: str | Path, why: str) -> dict:
    """Save ``checkpoint`` at ``out`` with its card metrics measured on ``dataset``.

    The weights are unchanged; the card's ``training_data`` keeps what the student was trained
    on, and ``training.remeasured`` records the dataset and ``why``. Returns the new card.
    """
    from training.generate import read_dataset
    from training.train import save_with_metrics, split_frames

    model, card = load_checkpoint(checkpoint)
    by_split, _ = split_frames(read_dataset(dataset), 0.0)
    record = {"dataset": str(dataset), "why": why}
    return save_with_metrics(model, card, out, by_split, "remeasured", record)


def refresh_card(name: str) -> Path:
    """Re-save a shipped student in the current checkpoint format with a derived description.

    The weights are unchanged (same tensors, migrated keys); the card gains the format-2
    integrity hash, a description built from the real parameter count, the training stages that
    made it (:func:`training.lineage.training_stages`, as far back as their cards reach) and,
    where the training dataset's ``summary.json`` is present, its counts by category, group and
    ring system.
    """
    key = canonical_name(name)
    model, card = load_checkpoint(students_dir() / key)
    card["description"] = describe(key, model.count_parameters())
    data = card.get("training_data") or {}
    summary = Path(str(data.get("dataset", ""))).parent / "summary.json"
    if data.get("dataset") and summary.is_file():  # counts a dataset gained after training
        counts = json.loads(summary.read_text()).get("by_library")
        data["by_library"] = counts or data.get("by_library")
    card["targets"] = target_status(key, card.get("metrics") or {})
    add_stages(card)
    return save_checkpoint(model, students_dir() / key, card)


#: The held-out numbers an ablation row keeps (``python -m training.heldout`` summary keys).
ABLATION_KEYS = (
    "energy_mae_mev_per_atom",
    "energy_mae_offset_removed_mev_per_atom",
    "force_r2",
    "force_rmse",
    "force_angle_deg",
)


def ablation_table(report: dict, rows: list[str]) -> dict:
    """A card's ablation table from a held-out report: one row per ``CHECKPOINT=LABEL``.

    Raises:
        ValueError: a row is not ``CHECKPOINT=LABEL`` or names a student the report lacks.
    """
    table = []
    for row in rows:
        checkpoint, sep, label = row.partition("=")
        if not sep or checkpoint not in report["summary"]:
            raise ValueError(
                f"{row!r}: expected CHECKPOINT=LABEL, CHECKPOINT one of the report's students "
                f"({', '.join(report['summary'])})."
            )
        measured = report["summary"][checkpoint]
        values = {k: round(measured[k], 4) for k in ABLATION_KEYS if k in measured}
        table.append({"step": label, "checkpoint": checkpoint, **values})
    return {"evaluated_on": report["split"], "frames": report["frames"], "rows": table}


def add_ablation(name: str, report: str | Path, rows: list[str]) -> Path:
    """Put :func:`ablation_table` of ``report`` on a shipped card; returns the card path.

    A table from the same report is replaced, so that rerunning the command changes nothing.
    """
    key = canonical_name(name)
    model, card = load_checkpoint(students_dir() / key)
    table = {"report": str(report), **ablation_table(json.loads(Path(report).read_text()), rows)}
    card["ablation"] = [a for a in card.get("ablation", []) if a["report"] != str(report)]
    card["ablation"].append(table)
    return save_checkpoint(model, students_dir() / key, card)


def main() -> int:
    """Command line: ship, ``--refresh``, ``--remeasure`` or ``--ablation`` (module docstring)."""
    if len(sys.argv) == 3 and sys.argv[1] == "--refresh":
        print(f"refreshed {sys.argv[2]} -> {refresh_card(sys.argv[2])}")
        return 0
    if len(sys.argv) >= 5 and sys.argv[1] == "--ablation":
        print(
            f"ablation of {sys.argv[2]} -> {add_ablation(sys.argv[2], sys.argv[3], sys.argv[4:])}"
        )
        return 0
    if len(sys.argv) == 6 and sys.argv[1] == "--remeasure":
        card = remeasure(*sys.argv[2:])
        print(f"remeasured -> {sys.argv[4]}: {sorted(card['metrics'])}")
        return 0
    if len(sys.argv) not in (3, 4):
        print(__doc__)
        return 2
    path = ship(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else None)
    print(f"shipped {sys.argv[2]} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
