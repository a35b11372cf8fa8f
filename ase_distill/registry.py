"""Registry of the named students shipped inside the package (``ase_distill/students/``).

A name ships only when its trained weights and model card are present; the registry never
hands out random weights under a name.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from ase_distill.checkpoint import checkpoint_paths, load_checkpoint, read_card
from ase_distill.family import ALIASES, members
from ase_distill.model import StudentModel

#: Canonical names of the students in the family table, with what each is for.
STUDENTS: dict[str, str] = {name: m.role for name, (_, m) in members().items()}


def students_dir() -> Path:
    """Folder holding the shipped ``NAME.pt`` / ``NAME.json`` files."""
    return Path(str(resources.files("ase_distill") / "students"))


def canonical_name(name: str) -> str:
    """Resolve aliases; raise ``ValueError`` listing known names for an unknown one."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in STUDENTS:
        known = ", ".join(list(STUDENTS) + [f"{a} (= {c})" for a, c in ALIASES.items()])
        raise ValueError(
            f"Unknown student {name!r}. Known students: {known}. For your own checkpoint use "
            "DistilledCalculator.from_checkpoint(path)."
        )
    return key


def shipped_students() -> list[str]:
    """Names whose trained weights ship with this installation."""
    d = students_dir()
    return [n for n in STUDENTS if (d / f"{n}.pt").is_file() and (d / f"{n}.json").is_file()]


def student_path(name: str) -> Path:
    """Checkpoint stem of a shipped student (``.../students/NAME``)."""
    key = canonical_name(name)
    stem = students_dir() / key
    if not (stem.with_suffix(".pt").is_file() and stem.with_suffix(".json").is_file()):
        shipped = shipped_students() or ["none"]
        raise ValueError(
            f"Student {key!r} is known but its trained weights are not shipped in this "
            f"installation ({stem}.pt / .json missing). Shipped: {', '.join(shipped)}. Reinstall "
            "ase-distill, or train it with `make students`."
        )
    return stem


def model_card(name: str) -> dict[str, Any]:
    """The model card of a shipped student."""
    return read_card(student_path(name))


def load_student(name: str) -> tuple[StudentModel, dict[str, Any]]:
    """Load a shipped student by name (sha256-checked, strict); returns ``(model, card)``."""
    return load_checkpoint(student_path(name))


TORCHSCRIPT_SUFFIXES = (".ts", ".torchscript")


def resolve_student(
    name_or_path: str | os.PathLike,
) -> tuple[StudentModel | torch.jit.ScriptModule, dict[str, Any]]:
    """The one resolver of "student name or file", used by the calculator, export and validate.

    A path (``NAME.pt``, ``NAME.json`` or their stem) loads a checkpoint, ``.ts`` /
    ``.torchscript`` an exported TorchScript student; anything else is a registry name.

    Raises:
        ValueError: an ONNX file (use ``OnnxCalculator``), an unknown name, a bad file.
    """
    path = Path(name_or_path)
    if path.suffix == ".onnx":
        raise ValueError(
            f"{path} is an ONNX file; run it with ase_distill.export.OnnxCalculator(path) "
            "(same interface, needs onnxruntime)."
        )
    if path.suffix in TORCHSCRIPT_SUFFIXES:
        from ase_distill.export import load_torchscript

        return load_torchscript(path)
    if path.suffix in {".pt", ".json"} or path.exists() or checkpoint_paths(path)[1].exists():
        return load_checkpoint(path)
    return load_student(str(name_or_path))
