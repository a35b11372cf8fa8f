"""Water students vs their teacher SevenNet-0 (and SevenNet-l3i5, Orb-v3 with random weights).

One thread, float32 students (eager, and ``fast=True``: compiled), periodic water boxes of
192 / 768 / 3,072 atoms (1.0 g/cm3). Teachers run only where they fit in time and memory
(``MAX_ATOMS``). `python -m benchmarks.water_report FILE` writes the ratios
(benchmarks/results/water_speedups.json). Nothing here asserts a time.
"""

import importlib.util

import numpy as np
import pytest
import torch

from ase_distill.registry import shipped_students
from benchmarks.systems import water_box

SIZES = {192: 64, 768: 256, 3072: 1024}  # atoms: molecules
CALCS = {
    "water-tiny": None,
    "water-ultra-tiny": None,
    "water-tiny-fast": None,  # fast=True: the compiled float32 package
    "water-ultra-tiny-fast": None,
    "sevennet-0": ("sevennet-0", {}),
    "sevennet-l3i5": ("sevennet-l3i5", {}),
    "orb-v3-conservative-inf": ("orb-v3-conservative-inf-omat", {"random_weights": True}),
    "orb-v3-direct-20": ("orb-v3-direct-20-omat", {"random_weights": True}),
}
# seconds per call on one thread grow to minutes (SevenNet-l3i5: ~5 s at 96 atoms), and
# Orb-v3-conservative needs 15.5 GB at 333 atoms: each teacher runs up to this size
MAX_ATOMS = {
    "sevennet-0": 768,
    "sevennet-l3i5": 192,
    "orb-v3-conservative-inf": 192,
    "orb-v3-direct-20": 3072,
}


def _calculator(name):
    if name.startswith("water-"):
        student = name.removesuffix("-fast")
        if student not in shipped_students():
            pytest.skip(f"{student} is not shipped")
        from ase_distill import DistilledCalculator

        if name.endswith("-fast"):
            return DistilledCalculator(student, fast=True)
        # eager for real: the default compile="auto" would use a package cached by any
        # earlier fast=True run and time the compiled path twice
        return DistilledCalculator(student, dtype=torch.float32, compile=False)
    teacher, options = CALCS[name]
    package = "sevenn" if teacher.startswith("sevennet") else "orb_models"
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} not installed")
    from training.teachers import make_teacher

    return make_teacher(teacher, **options).calculator


@pytest.mark.parametrize("n_atoms", list(SIZES))
@pytest.mark.parametrize("name", list(CALCS))
def test_water_call(benchmark, name, n_atoms):
    if n_atoms > MAX_ATOMS.get(name, 10**9):
        pytest.skip(f"{name} is not run at {n_atoms} atoms (time / memory)")
    torch.set_num_threads(1)
    atoms = water_box(SIZES[n_atoms])
    atoms.calc = _calculator(name)
    rng = np.random.default_rng(0)

    def call():
        atoms.positions[0] += rng.normal(scale=1e-3, size=3)  # a new geometry every call
        atoms.get_forces()

    call()
    benchmark.group = f"water {n_atoms} atoms"
    benchmark.extra_info.update({"calculator": name, "n_atoms": n_atoms})
    rounds = 5 if name.startswith("water-") else 2 if n_atoms <= 192 else 1
    benchmark.pedantic(call, rounds=rounds, iterations=1)
