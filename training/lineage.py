"""Every training stage that made a checkpoint, for its model card.

A student is usually fine-tuned several times (CPU stages, a GPU stage, energy stages), each
run recording only itself and the checkpoint it started from (``training.init_from``). A card
that listed the last stage alone would credit minutes on one machine with what took hours on
several. :func:`training_stages` follows ``init_from`` from card to card and lists the stages
first to last; a card that already holds ``training.stages`` ends the walk (it carries its own
history), and where an earlier card no longer exists the list starts with a marker saying so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: A walk longer than this is a loop of cards, not a history.
MAX_STAGES = 100


def stage_record(training: dict[str, Any]) -> dict[str, Any]:
    """One stage's compute and settings, from a card's ``training`` section."""
    config = training.get("config") or {}
    epochs, steps = training.get("epochs_run"), config.get("max_steps_per_epoch")
    return {
        "run": config.get("output"),
        "init_from": training.get("init_from"),
        "hardware": training.get("hardware"),
        "processes": training.get("processes", 1),
        "seconds": training.get("seconds"),
        "epochs": epochs,
        "steps": epochs * steps if epochs is not None and steps else None,
        "batch_size": config.get("batch_size"),
        "lr": config.get("lr"),
        "energy_weight": config.get("energy_weight"),
    }


def _card_of(checkpoint: str) -> dict[str, Any] | None:
    path = Path(checkpoint).with_suffix(".json")
    return json.loads(path.read_text()) if path.is_file() else None


def training_stages(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The stages that made ``card``'s weights, first to last (``card``'s own stage last).

    Checkpoint paths in ``init_from`` are read as written (relative to the working folder the
    run was started in). A stage whose starting card is missing is preceded by ``{"init_from":
    PATH, "card": "not found"}``: the history before it is unknown, not empty.
    """
    stages: list[dict[str, Any]] = []
    seen: set[str] = set()
    training = card.get("training") or {}
    while len(stages) < MAX_STAGES:
        if training.get("stages"):  # a card that carries its own history
            return list(training["stages"]) + stages
        stages.insert(0, stage_record(training))
        start = training.get("init_from")
        if not start or start in seen:
            break
        seen.add(start)
        earlier = _card_of(start)
        if earlier is None:
            stages.insert(0, {"init_from": start, "card": "not found"})
            break
        training = earlier.get("training") or {}
    return stages


def total_seconds(stages: list[dict[str, Any]]) -> float:
    """Training time summed over the stages that record one (wall-clock seconds)."""
    return round(sum(s.get("seconds") or 0.0 for s in stages), 1)
