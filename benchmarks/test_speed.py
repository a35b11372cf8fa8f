"""Energy+forces call time: students vs teachers vs the framework floor, in one run.

Ratios (speed-ups) are computed by `benchmarks/report.py` from the JSON this run writes
(`make bench`); nothing here asserts a time.
"""

import resource

import numpy as np
import pytest
import torch
from ase.calculators.calculator import all_changes

from benchmarks.systems import SYSTEMS

STUDENTS = ["original", "tiny", "ultra-tiny"]
TEACHERS = {
    "orb-v3-conservative-inf": ("orb-v3-conservative-inf-omat", {"random_weights": True}),
    "orb-v3-direct-20": ("orb-v3-direct-20-omat", {"random_weights": True}),
    "gfn2-xtb": ("gfn2-xtb", {}),
    "chgnet": ("chgnet", {"use_device": "cpu"}),
}
# largest system each teacher is run on (cost on 2 cores)
TEACHER_MAX_ATOMS = {
    "orb-v3-conservative-inf": 100,  # 999 atoms: killed for memory (24 GB machine)
    "orb-v3-direct-20": 1000,
    "gfn2-xtb": 100,
    "chgnet": 1000,
}

_cache = {}


def system(name):
    if name not in _cache:
        _cache[name] = SYSTEMS[name]()
    return _cache[name]


def _rounds(n_atoms):
    return 10 if n_atoms < 200 else 3 if n_atoms < 2000 else 1


def _run(benchmark, calc, atoms, label):
    atoms = atoms.copy()

    def call():
        atoms.positions[0, 0] += 1e-6  # a new geometry each call: no cached results
        calc.calculate(atoms, ["energy", "forces"], all_changes)
        return calc.results["forces"]

    call()  # warm-up (graph building, lazy init)
    forces = benchmark.pedantic(call, rounds=_rounds(len(atoms)), iterations=1)
    assert np.isfinite(forces).all()
    benchmark.extra_info.update(
        {
            "calculator": label,
            "n_atoms": len(atoms),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


@pytest.mark.parametrize("sys_name", list(SYSTEMS))
@pytest.mark.parametrize("student", STUDENTS)
def test_student(benchmark, student, sys_name):
    from ase_distill import DistilledCalculator

    atoms = system(sys_name)
    benchmark.group = sys_name
    _run(benchmark, DistilledCalculator(student, dtype=torch.float32), atoms, f"student-{student}")


@pytest.mark.parametrize("sys_name", list(SYSTEMS))
@pytest.mark.parametrize("teacher", list(TEACHERS))
def test_teacher(benchmark, teacher, sys_name):
    from training.teachers import make_teacher

    atoms = system(sys_name)
    if len(atoms) > TEACHER_MAX_ATOMS[teacher]:
        pytest.skip(f"{teacher} is not run above {TEACHER_MAX_ATOMS[teacher]} atoms here")
    name, options = TEACHERS[teacher]
    if name.startswith("orb"):
        pytest.importorskip("orb_models")
    if name == "chgnet":
        pytest.importorskip("chgnet")
        if not atoms.pbc.all():
            pytest.skip("CHGNet needs a periodic cell (pymatgen Structure): singular cell here")
    benchmark.group = sys_name
    _run(benchmark, make_teacher(name, **options).calculator, atoms, teacher)


@pytest.mark.parametrize("sys_name", list(SYSTEMS))
def test_floor(benchmark, sys_name):
    """An empty torch forward+backward on the same atoms: the framework's overhead."""
    n = len(system(sys_name))
    pos = torch.randn(n, 3)

    def call():
        p = pos.detach().requires_grad_(True)
        (e,) = torch.autograd.grad([(p * p).sum()], [p])
        return e

    benchmark.group = sys_name
    benchmark.pedantic(call, rounds=50, iterations=1, warmup_rounds=2)
    benchmark.extra_info.update({"calculator": "floor", "n_atoms": n})


@pytest.mark.parametrize("sys_name", ["aspirin-21", "water-box-999"])
@pytest.mark.parametrize("mode", ["eager", "torchscript", "compile"])
def test_tiny_modes(benchmark, mode, sys_name, tmp_path):
    """Eager vs TorchScript vs torch.compile for the tiny student (model call only)."""
    from ase_distill import ConservativePotential, atoms_to_graph, load_student

    model, _ = load_student("tiny")
    model = model.float().eval()
    pot = ConservativePotential(model)
    if mode == "torchscript":
        pot = torch.jit.script(pot)
    elif mode == "compile":
        pot = torch.compile(pot, dynamic=True)
    g = atoms_to_graph(system(sys_name), model.cutoff, model.species, dtype=torch.float32)
    args = (*g.model_inputs(), g.n_structures)
    pot(*args)
    pot(*args)
    benchmark.group = f"modes-{sys_name}"
    benchmark.pedantic(lambda: pot(*args), rounds=_rounds(g.n_atoms) * 2, iterations=1)
    benchmark.extra_info.update({"calculator": f"tiny-{mode}", "n_atoms": g.n_atoms})
