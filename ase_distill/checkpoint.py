"""Checkpoints: a ``state_dict`` file plus a JSON model card, verified by sha256.

A checkpoint ``NAME`` is two files side by side: ``NAME.pt`` (tensors only, loaded with
``torch.load(weights_only=True)``) and ``NAME.json`` (the model card: architecture, species,
cutoff, units, teacher, training data, metrics, and the sha256 of ``NAME.pt``). No pickled
modules; the architecture is rebuilt from the card and loaded with ``strict=True``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from ase.data import chemical_symbols

from ase_distill.model import StudentConfig, StudentModel

FORMAT = "ase-distill-checkpoint/1"
UNITS = {
    "energy": "eV",
    "length": "Angstrom",
    "forces": "eV/Angstrom",
    "stress": "eV/Angstrom^3",
}


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupted, or does not match its model card."""


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; shipped data must be readable by all
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(weights, card)`` paths for a checkpoint given by either file or the common stem."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in {".pt", ".json"} else path
    return stem.with_suffix(".pt"), stem.with_suffix(".json")


def state_dict_bytes(model: StudentModel) -> bytes:
    """Serialised ``state_dict`` (tensors only) of ``model``."""
    buffer = io.BytesIO()
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save(state, buffer)
    return buffer.getvalue()


def save_checkpoint(
    model: StudentModel, path: str | os.PathLike, card: dict[str, Any] | None = None
) -> Path:
    """Save ``model`` as ``PATH.pt`` + ``PATH.json``; returns the card path.

    ``card`` adds to (and may override) the generated fields: teacher, training data, metrics.
    Both writes are atomic, weights first, so a crash never leaves a card pointing at old data.
    """
    weights, card_path = checkpoint_paths(path)
    data = state_dict_bytes(model)
    full = {
        "format": FORMAT,
        "name": weights.stem,
        "architecture": model.config.to_dict(),
        "species": [chemical_symbols[z] for z in model.config.species],
        "cutoff": model.config.cutoff,
        "units": UNITS,
        "parameters": model.count_parameters(),
        **(card or {}),
        "weights_file": weights.name,
        "sha256": sha256_bytes(data),
    }
    atomic_write_bytes(weights, data)
    atomic_write_json(card_path, full)
    return card_path


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check the model card of a checkpoint."""
    _, card_path = checkpoint_paths(path)
    if not card_path.is_file():
        raise CheckpointError(
            f"Model card {card_path} not found; a checkpoint is NAME.pt plus NAME.json, written "
            "by ase_distill.checkpoint.save_checkpoint or `ase-distill train`."
        )
    try:
        card = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"Model card {card_path} is not valid JSON ({exc}).") from exc
    for key in ("format", "architecture", "sha256"):
        if key not in card:
            raise CheckpointError(f"Model card {card_path} lacks the field {key!r}.")
    if card["format"] != FORMAT:
        raise CheckpointError(
            f"Model card {card_path} has format {card['format']!r}; this version reads {FORMAT}."
        )
    return card


def load_checkpoint(path: str | os.PathLike) -> tuple[StudentModel, dict[str, Any]]:
    """Load a student from ``PATH.pt`` + ``PATH.json``; returns ``(model, card)``.

    Raises:
        CheckpointError: missing files, invalid card, sha256 mismatch (tampered or corrupted
            weights), or weights that do not fit the architecture.

    """
    weights, card_path = checkpoint_paths(path)
    card = read_card(card_path)
    if not weights.is_file():
        raise CheckpointError(f"Weights file {weights} not found next to its card {card_path}.")
    data = weights.read_bytes()
    digest = sha256_bytes(data)
    if digest != card["sha256"]:
        raise CheckpointError(
            f"sha256 of {weights} is {digest[:16]}..., the card expects {card['sha256'][:16]}...: "
            "the weights were modified or corrupted. Restore the file or re-save the checkpoint."
        )
    config = StudentConfig.from_dict(card["architecture"])
    model = StudentModel(config)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    except Exception as exc:  # torch raises several types for corrupt / mismatched files
        raise CheckpointError(f"Could not load weights {weights}: {exc}") from exc
    model.eval()
    return model, card
