"""The one table of shipped student families: names, sizes, roles and targets.

Everything that lists students derives from :data:`FAMILIES`: the registry (names and
descriptions), the size configs (:data:`ase_distill.model.SIZES`), the CLI's choices, the card
targets written by ``training.ship``, the benchmark lists and the tests. A second family (for
example periodic water students distilled from SevenNet-0) is one more entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Member:
    """One named student of a family.

    Attributes:
        name: registry name (``DistilledCalculator(name)``).
        size: size name, shared across families (``original`` / ``tiny`` / ``ultra-tiny``).
        architecture: :class:`~ase_distill.model.StudentConfig` fields of this member.
        role: what the member is for, one phrase (its description adds the parameter count).
        targets: goals on the family's held-out split; ``force_r2`` is higher-is-better, every
            other key lower-is-better. ``METRIC_vs_MEMBER`` is a ratio: this member's METRIC
            over the shipped MEMBER's on the same split (size must pay).
    """

    name: str
    size: str
    architecture: dict[str, Any]
    role: str
    targets: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    """Students distilled from one teacher on one kind of chemistry."""

    name: str
    species: tuple[int, ...]
    target_split: str
    members: tuple[Member, ...]


#: Architecture of each size; a family may override species and cutoff.
SIZE_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "original": {"features": 112, "interactions": 3, "radial_basis": 20},
    "tiny": {"features": 46, "interactions": 3, "radial_basis": 16},
    "ultra-tiny": {"features": 24, "interactions": 3, "radial_basis": 8},
}


def _member(name: str, size: str, role: str, targets: dict, **architecture: Any) -> Member:
    """A member of ``size`` whose architecture overrides the size's with ``architecture``."""
    return Member(name, size, {**SIZE_ARCHITECTURES[size], **architecture}, role, targets)


def _chno_targets(
    r2: float,
    angle: float,
    energy: float,
    worst_r2: float | None = None,
    rmse_vs_tiny: float | None = None,
) -> dict[str, float]:
    targets = {"force_r2": r2, "force_angle_deg": angle, "energy_mae_mev_per_atom": energy}
    if worst_r2 is not None:  # the worst single held-out molecule
        targets["worst_molecule_force_r2"] = worst_r2
    if rmse_vs_tiny is not None:  # issue 11: the largest student must beat tiny by this ratio
        targets["force_rmse_vs_tiny"] = rmse_vs_tiny
    return targets


def _water_targets(r2: float, energy: float, stress: float) -> dict[str, float]:
    return {"force_r2": r2, "energy_mae_mev_per_atom": energy, "stress_mae_gpa": stress}


WATER_ROLE = "periodic water from SevenNet-0 (not Orb)"

# fmt: off
FAMILIES: dict[str, Family] = {
    "chno": Family(
        name="chno",
        species=(1, 6, 7, 8),
        target_split="heldout_md_300_600K",
        members=(
            _member("original", "original", "largest student: highest fidelity",
                    _chno_targets(0.995, 4.0, 2.0, rmse_vs_tiny=0.8)),
            _member("tiny", "tiny", "default student: the speed / fidelity sweet spot",
                    _chno_targets(0.99, 5.0, 3.0, worst_r2=0.98)),
            _member("ultra-tiny", "ultra-tiny", "smallest student: fastest, for screening",
                    _chno_targets(0.98, 7.0, 4.0)),
        ),
    ),
    "water": Family(
        name="water",
        species=(1, 8),
        # boxes held out whole: their teacher MD, rattle and strain frames
        target_split="test_molecule",
        members=(
            _member("water-tiny", "tiny", f"{WATER_ROLE}: the speed / fidelity sweet spot",
                    _water_targets(0.99, 1.0, 0.3), species=(1, 8)),
            _member("water-ultra-tiny", "ultra-tiny", f"{WATER_ROLE}: fastest",
                    _water_targets(0.98, 2.0, 0.5), species=(1, 8)),
        ),
    ),
}
# fmt: on

#: Accepted spellings -> canonical name.
ALIASES: dict[str, str] = {
    "ultra_tiny": "ultra-tiny",
    "ultratiny": "ultra-tiny",
    "default": "tiny",
    "large": "original",
    "water_tiny": "water-tiny",
    "water_ultra_tiny": "water-ultra-tiny",
}

#: The student ``DistilledCalculator()`` loads without a name.
DEFAULT_STUDENT = "tiny"


def members() -> dict[str, tuple[Family, Member]]:
    """Every named student with its family, in table order."""
    return {m.name: (f, m) for f in FAMILIES.values() for m in f.members}


def student_names(family: str | None = None) -> list[str]:
    """Names of the students in the table (of one family when given)."""
    return [n for n, (f, _) in members().items() if family is None or f.name == family]


def member(name: str) -> tuple[Family, Member]:
    """``(family, member)`` of a canonical student name (``KeyError`` if unknown)."""
    return members()[name]


def size_names() -> list[str]:
    """Size names (``original``, ``tiny``, ``ultra-tiny``)."""
    return list(SIZE_ARCHITECTURES)


def describe(name: str, parameters: int) -> str:
    """Description of a student with its real parameter count (never a hand-written one)."""
    _, m = member(name)
    return f"{m.role} ({parameters:,} parameters)"


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better (R2); errors and angles are lower-better."""
    return metric.endswith("r2")
