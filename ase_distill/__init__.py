"""ase-distill: fast student potentials distilled from atomistic foundation models.

>>> from ase_distill import DistilledCalculator
>>> atoms.calc = DistilledCalculator("tiny")  # doctest: +SKIP
"""

from ase_distill.calculator import DistilledCalculator
from ase_distill.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ase_distill.graph import AtomsGraph, atoms_to_graph
from ase_distill.model import SIZES, ConservativePotential, StudentConfig, StudentModel, size_config
from ase_distill.registry import load_student, model_card, shipped_students

__version__ = "0.1.0"

__all__ = [
    "SIZES",
    "AtomsGraph",
    "CheckpointError",
    "ConservativePotential",
    "DistilledCalculator",
    "StudentConfig",
    "StudentModel",
    "atoms_to_graph",
    "load_checkpoint",
    "load_student",
    "model_card",
    "save_checkpoint",
    "shipped_students",
    "size_config",
]
