"""Energy+forces call time: students vs teachers vs the framework floor, in one run.

Ratios (speed-ups) are computed by `benchmarks/report.py` from the JSON this run writes
(`make bench`); nothing here asserts a time.
"""

import os
import resource
import threading
import time

import numpy as np
import pytest
import torch
from ase.calculators.calculator import all_changes

from ase_distill.family import student_names
from benchmarks.systems import SYSTEMS

STUDENTS = student_names("chno")  # the CHNO family of the table (ase_distill.family)
TEACHERS = {
    "orb-v3-conservative-inf": ("orb-v3-conservative-inf-omat", {"random_weights": True}),
    "orb-v3-direct-20": ("orb-v3-direct-20-omat", {"random_weights": True}),
    "gfn2-xtb": ("gfn2-xtb", {}),
    "chgnet": ("chgnet", {"use_device": "cpu"}),
}
# Largest system each teacher is run on here (2 cores, 24 GB). Orb-v3-conservative-inf takes
# 5.1 GB at 99 atoms and 15.5 GB at 333 (measured): 999 atoms would need ~46 GB.
TEACHER_MAX_ATOMS = {
    "orb-v3-conservative-inf": 333,
    "orb-v3-direct-20": 2997,
    "gfn2-xtb": 100,
    "chgnet": 999,
}
# torch.compile'd students are run up to this size (compilation is per process, not per size)
COMPILE_MAX_ATOMS = 2997

_cache = {}


def system(name):
    if name not in _cache:
        _cache[name] = SYSTEMS[name]()
    return _cache[name]


def _rounds(n_atoms: int, seconds_per_call: float | None = None) -> int:
    """Rounds for one benchmark: with a measured call time, about 2 s of calls (at most 500).

    Why: ten rounds of a 1 ms call left the median to a few cold or disturbed calls (a median of
    1.8 ms in a run whose fastest call took 1.3 ms); 2 s of calls give a stable median.
    """
    floor = 10 if n_atoms < 200 else 3 if n_atoms < 2000 else 1
    if seconds_per_call is None:
        return floor
    return max(floor, min(500, int(2.0 / max(seconds_per_call, 1e-6))))


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_extra_mb(fn) -> float:
    """Peak resident memory above the level before ``fn()`` while it runs (sampled every 1 ms)."""
    base, peak, done = _rss_mb(), [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            done.wait(0.001)

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        fn()
    finally:
        done.set()
        thread.join()
    return max(peak[0], _rss_mb()) - base


def _run(benchmark, calc, atoms, label):
    atoms = atoms.copy()

    def call():
        atoms.positions[0, 0] += 1e-6  # a new geometry each call: no cached results
        calc.calculate(atoms, ["energy", "forces"], all_changes)
        return calc.results["forces"]

    call()  # warm-up (graph building, lazy init, compilation)
    start = time.perf_counter()
    extra = peak_extra_mb(call)
    rounds = _rounds(len(atoms), time.perf_counter() - start)
    forces = benchmark.pedantic(call, rounds=rounds, iterations=1, warmup_rounds=min(rounds, 20))
    assert np.isfinite(forces).all()
    benchmark.extra_info.update(
        {
            "calculator": label,
            "n_atoms": len(atoms),
            "call_peak_extra_mb": extra,
            "process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    )


@pytest.mark.parametrize("sys_name", list(SYSTEMS))
@pytest.mark.parametrize("student", STUDENTS)
@pytest.mark.parametrize("mode", ["eager", "compile"])
def test_student(benchmark, mode, student, sys_name):
    """The shipped calculator, float32, eager or ``compile=True``."""
    from ase_distill import DistilledCalculator

    atoms = system(sys_name)
    if mode == "compile" and len(atoms) > COMPILE_MAX_ATOMS:
        pytest.skip(f"compiled students are not run above {COMPILE_MAX_ATOMS} atoms here")
    benchmark.group = sys_name
    calc = DistilledCalculator(student, dtype=torch.float32, compile=mode == "compile")
    label = f"student-{student}" + ("-compiled" if mode == "compile" else "")
    _run(benchmark, calc, atoms, label)


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


@pytest.mark.parametrize("sys_name", list(SYSTEMS))
def test_floor_graph(benchmark, sys_name):
    """The calculator path without a network: neighbour list, graph, ``sum r^2`` and its gradient.

    What any graph potential called through ASE pays per step before its network does anything.
    """
    from ase_distill import atoms_to_graph

    atoms = system(sys_name).copy()

    def call():
        atoms.positions[0, 0] += 1e-6
        g = atoms_to_graph(atoms, 5.0, dtype=torch.float32)
        p = g.positions.requires_grad_(True)
        i, j = g.edge_index
        shift = g.edge_shift @ g.cell[0]
        vec = p[j] - p[i] + shift
        (grad,) = torch.autograd.grad([(vec * vec).sum()], [p])
        return -grad.numpy().astype(np.float64)

    call()
    benchmark.group = sys_name
    benchmark.pedantic(call, rounds=max(_rounds(len(atoms)), 5), iterations=1)
    benchmark.extra_info.update({"calculator": "floor-graph", "n_atoms": len(atoms)})


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


@pytest.mark.parametrize("sys_name", list(SYSTEMS))
@pytest.mark.parametrize("student", STUDENTS)
def test_reused_memory_student(benchmark, student, sys_name):
    """Eager students after ``ase_distill.tuning.reuse_freed_memory()`` (process-wide, opt-in).

    ``benchmarks/run_all.sh`` runs this group in its own process, after the others.
    """
    from ase_distill import DistilledCalculator
    from ase_distill.tuning import reuse_freed_memory

    if not reuse_freed_memory():
        pytest.skip("needs glibc")
    atoms = system(sys_name)
    benchmark.group = sys_name
    calc = DistilledCalculator(student, dtype=torch.float32)
    _run(benchmark, calc, atoms, f"student-{student}-reused-memory")
