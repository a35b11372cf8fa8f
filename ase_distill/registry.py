"""Registry of the named students shipped inside the package (``ase_distill/students/``).

A name ships only when its trained weights and model card are present; the registry never
hands out random weights under a name.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from ase_distill.checkpoint import load_checkpoint, read_card
from ase_distill.model import StudentModel

#: Canonical names of the shipped family, with what each is meant to be.
STUDENTS: dict[str, str] = {
    "original": "largest student (~427K parameters): highest fidelity",
    "tiny": "default student (~77K parameters): the speed / fidelity sweet spot",
    "ultra-tiny": "smallest student (~21K parameters): fastest, for screening",
}

#: Accepted spellings -> canonical name.
ALIASES: dict[str, str] = {
    "ultra_tiny": "ultra-tiny",
    "ultratiny": "ultra-tiny",
    "default": "tiny",
    "large": "original",
}


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
