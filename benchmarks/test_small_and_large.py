"""Issue 14: a small molecule against its teachers, and cost and memory up to 10^5 atoms.

Two groups, each measured in one run (``make bench``; ratios in ``small_large_report.py``):

* ``small-caffeine-24``: tiny's fast path (compiled float32), tiny by default (float64, through
  the package ``make install`` compiles), tiny eager float64 and float32, GFN2-xTB and
  Orb-v3-conservative-inf (real architecture, random weights: its cost is real) on caffeine
  (24 atoms), one thread.
* ``scaling``: tiny by default (float64, edge chunks) and float32 on water boxes of 333 to
  99,999 atoms, and without chunks (``edge_chunk=0``) up to 9,999; peak memory of each call.

Nothing here asserts a time.
"""

import numpy as np
import pytest
import torch

from benchmarks.systems import water_box
from benchmarks.test_speed import _run

SMALL = "caffeine"
SCALING_MOLECULES = [111, 333, 999, 3333, 33333]
UNCHUNKED_MAX_ATOMS = 10_000
FLOAT64_MAX_ATOMS = 10_000  # one float64 call at 10^5 atoms takes minutes here: float32 only

_systems = {}


def _structure(key):
    if key not in _systems:
        if key == SMALL:
            from training.structures import load_structure

            _systems[key] = load_structure(SMALL)[1]
        else:
            _systems[key] = water_box(int(key))
    return _systems[key]


SMALL_CALCULATORS = {
    "tiny-fast": lambda: _student(fast=True),
    "tiny-default": lambda: _installed_default(),
    "tiny-eager": lambda: _student(compile=False),
    "tiny-float32": lambda: _student(dtype=torch.float32, compile=False),
    "gfn2-xtb": lambda: _teacher("gfn2-xtb"),
    "orb-v3-conservative-inf": lambda: _teacher("orb-v3-conservative-inf-omat", True),
}


def _student(**kwargs):
    from ase_distill import DistilledCalculator

    return DistilledCalculator("tiny", **kwargs)


def _installed_default():
    """``DistilledCalculator("tiny")`` as ``make install`` leaves it: packages compiled."""
    from ase_distill.compiled import compiled_potential
    from ase_distill.registry import load_student

    compiled_potential(load_student("tiny")[0], torch.float64, False)  # ase-distill compile tiny
    return _student()


def _teacher(name, random_weights=False):
    from training.teachers import make_teacher

    if name.startswith("orb"):
        pytest.importorskip("orb_models")
        return make_teacher(name, random_weights=True).calculator
    return make_teacher(name).calculator


@pytest.mark.parametrize("label", list(SMALL_CALCULATORS))
def test_small_molecule(benchmark, label):
    benchmark.group = f"small-{SMALL}-24"
    _run(benchmark, SMALL_CALCULATORS[label](), _structure(SMALL), label)


@pytest.mark.parametrize("n_molecules", SCALING_MOLECULES)
@pytest.mark.parametrize("mode", ["default", "float32", "unchunked-float32"])
def test_scaling(benchmark, mode, n_molecules):
    atoms = _structure(str(n_molecules))
    if mode == "default" and len(atoms) > FLOAT64_MAX_ATOMS:
        pytest.skip(f"float64 is not run above {FLOAT64_MAX_ATOMS} atoms here")
    if mode.startswith("unchunked") and len(atoms) > UNCHUNKED_MAX_ATOMS:
        pytest.skip(f"all edges at once is not run above {UNCHUNKED_MAX_ATOMS} atoms here")
    options = {  # eager: the compiled package does not chunk, so it is not used at these sizes
        "default": {"compile": False},
        "float32": {"dtype": torch.float32, "compile": False},
        "unchunked-float32": {"dtype": torch.float32, "edge_chunk": 0, "compile": False},
    }[mode]
    benchmark.group = "scaling"
    calc = _student(**options)
    _run(benchmark, calc, atoms, f"tiny-{mode}")
    assert np.isfinite(calc.results["energy"])
