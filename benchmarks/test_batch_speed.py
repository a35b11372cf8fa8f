"""Throughput of batched evaluation: 32 aspirin replicas in one call vs 32 ASE calls.

One thread, float64 (the default), the tiny student. `python -m benchmarks.batch_report FILE`
turns the run's JSON into the ratio (benchmarks/results/batch_speedup.json). Nothing here
asserts a time.
"""

import numpy as np
import pytest

from ase_distill import DistilledCalculator
from ase_distill.batch import BatchEvaluator
from training.structures import load_structure

REPLICAS = 32


@pytest.fixture(scope="module")
def replicas():
    _, aspirin = load_structure("aspirin")
    rng = np.random.default_rng(0)
    out = []
    for _ in range(REPLICAS):
        a = aspirin.copy()
        a.positions += rng.normal(scale=0.05, size=a.positions.shape)
        out.append(a)
    return out


@pytest.mark.parametrize("compiled", [False, True], ids=["default", "compiled"])
def test_separate_ase_calls(benchmark, replicas, compiled):
    """32 ASE calls: the default calculator, and the compiled float64 package (the fair baseline
    for the compiled batch)."""
    calc = DistilledCalculator("tiny", compile=True if compiled else "auto")

    def run():
        for atoms in replicas:
            calc.calculate(atoms, ["energy", "forces"])

    benchmark.group = f"{REPLICAS} aspirin replicas"
    mode = "separate-compiled" if compiled else "separate"
    benchmark.extra_info.update({"mode": mode, "replicas": REPLICAS})
    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_one_batched_call(benchmark, replicas, compiled):
    evaluator = BatchEvaluator("tiny", compile=compiled)
    benchmark.group = f"{REPLICAS} aspirin replicas"
    mode = "batched-compiled" if compiled else "batched"
    benchmark.extra_info.update({"mode": mode, "replicas": REPLICAS})
    benchmark.pedantic(
        lambda: evaluator.evaluate(replicas), rounds=5, iterations=1, warmup_rounds=1
    )
