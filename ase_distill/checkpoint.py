"""Checkpoints: a ``state_dict`` file plus a JSON model card, verified by sha256.

A checkpoint ``NAME`` is two files side by side: ``NAME.pt`` (tensors only, loaded with
``torch.load(weights_only=True)``) and ``NAME.json`` (the model card: architecture, species,
cutoff, units, teacher, training data, metrics, and a sha256). No pickled modules; the
architecture is rebuilt from the card and loaded with ``strict=True``.

Format 2 hashes the weights *and* the architecture (:func:`integrity_digest`): editing the
cutoff in a card changes every energy, so it must fail the check like edited weights do. Format 1
cards (weights only) still load, with a warning that their architecture is unverified.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from ase.data import chemical_symbols

from ase_distill.model import StudentConfig, StudentModel

FORMAT = "ase-distill-checkpoint/2"
LEGACY_FORMATS = ("ase-distill-checkpoint/1",)
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


def _finite(obj: Any) -> Any:
    """``obj`` with NaN and infinities replaced by ``None`` (JSON has no NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, strictly valid JSON atomically (NaN / inf become ``null``)."""
    text = json.dumps(_finite(obj), indent=2, sort_keys=False, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def integrity_digest(weights: bytes, architecture: dict[str, Any]) -> str:
    """sha256 of the weights file followed by the architecture as canonical JSON."""
    canonical = json.dumps(architecture, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(weights + b"\n" + canonical).hexdigest()


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(weights, card)`` paths for a checkpoint given by either file or the common stem.

    Suffixes are appended, never substituted: ``d/tiny_cutoff4.5`` is ``d/tiny_cutoff4.5.pt``
    (``with_suffix`` would have made it ``d/tiny_cutoff4.pt`` and let two names collide).
    """
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in {".pt", ".json"} else path
    return stem.parent / f"{stem.name}.pt", stem.parent / f"{stem.name}.json"


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

    ``card`` adds the descriptive fields (name, teacher, training data, metrics, ...); what
    describes the weights themselves (format, architecture, species, cutoff, parameters,
    sha256) always comes from ``model``. Both writes are atomic, weights first, so a crash
    never leaves a card pointing at old data.
    """
    weights, card_path = checkpoint_paths(path)
    data = state_dict_bytes(model)
    architecture = model.config.to_dict()
    full = {"name": weights.name[: -len(".pt")], **(card or {})}
    full.update(
        {
            "format": FORMAT,
            "architecture": architecture,
            "species": [chemical_symbols[z] for z in model.config.species],
            "cutoff": model.config.cutoff,
            "units": UNITS,
            "parameters": model.count_parameters(),
            "weights_file": weights.name,
            "sha256": integrity_digest(data, architecture),
        }
    )
    atomic_write_bytes(weights, data)
    atomic_write_json(card_path, full)
    return card_path


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check the model card of a checkpoint."""
    if Path(path).is_dir():
        hint = " (a training run: load RUN/best)" if (Path(path) / "best.json").is_file() else ""
        raise CheckpointError(
            f"{path} is a folder{hint}; give a checkpoint NAME.pt / NAME.json (or its stem), "
            f"for a training run {Path(path) / 'best.pt'}."
        )
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
    if not isinstance(card, dict):
        raise CheckpointError(f"Model card {card_path} must be a JSON object.")
    for key in ("format", "architecture", "sha256"):
        if key not in card:
            raise CheckpointError(f"Model card {card_path} lacks the field {key!r}.")
    if card["format"] not in (FORMAT, *LEGACY_FORMATS):
        raise CheckpointError(
            f"Model card {card_path} has format {card['format']!r}; this version reads {FORMAT} "
            f"and {', '.join(LEGACY_FORMATS)}."
        )
    return card


def config_from_card(card: dict[str, Any], where: str | os.PathLike) -> StudentConfig:
    """The architecture of a card, with a :class:`CheckpointError` for wrong types or values."""
    arch = card["architecture"]
    if not isinstance(arch, dict):
        raise CheckpointError(f"Model card {where}: 'architecture' must be a mapping.")
    species = arch.get("species", [])
    if not isinstance(species, list) or not all(
        isinstance(z, int) and not isinstance(z, bool) for z in species
    ):
        raise CheckpointError(
            f"Model card {where}: architecture.species must be a list of atomic numbers "
            f"(integers), got {species!r}."
        )
    try:
        return StudentConfig.from_dict(arch)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"Model card {where} has an invalid architecture: {exc}") from exc


def check_integrity(card: dict[str, Any], data: bytes, weights: Path) -> None:
    """Raise unless the card's sha256 matches the weights (and, format 2, the architecture)."""
    if card["format"] in LEGACY_FORMATS:
        expected, digest = card["sha256"], sha256_bytes(data)
        warnings.warn(
            f"{weights.with_suffix('.json')} is a {card['format']} card: its sha256 covers the "
            "weights only, so its architecture is unverified. Re-save it with "
            "ase_distill.save_checkpoint to upgrade.",
            stacklevel=3,
        )
    else:
        expected, digest = card["sha256"], integrity_digest(data, card["architecture"])
    if digest != expected:
        raise CheckpointError(
            f"sha256 of {weights} and its architecture is {digest[:16]}..., the card expects "
            f"{str(expected)[:16]}...: the weights or the card's architecture were modified or "
            "corrupted. Restore the files or re-save the checkpoint."
        )


def load_checkpoint(path: str | os.PathLike) -> tuple[StudentModel, dict[str, Any]]:
    """Load a student from ``PATH.pt`` + ``PATH.json``; returns ``(model, card)``.

    Raises:
        CheckpointError: missing files, invalid card, sha256 mismatch (tampered or corrupted
            weights), or weights that do not fit the architecture.

    """
    card = read_card(path)
    weights, card_path = checkpoint_paths(path)
    if not weights.is_file():
        raise CheckpointError(f"Weights file {weights} not found next to its card {card_path}.")
    data = weights.read_bytes()
    config = config_from_card(card, card_path)
    check_integrity(card, data, weights)
    model = StudentModel(config)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    except Exception as exc:  # torch raises several types for corrupt / mismatched files
        raise CheckpointError(f"Could not load weights {weights}: {exc}") from exc
    model.eval()
    return model, card
