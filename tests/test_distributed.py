"""Training on two processes (torchrun, gloo on CPU) equals one process on the same batches."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.test_regressions import CU, _emt_dataset

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import os, sys, torch
from training.config import TrainConfig
from training.train import Trainer
config = TrainConfig(dataset=sys.argv[1], output=sys.argv[2], size="ultra-tiny",
                     architecture={arch!r}, epochs=2, batch_size=6, threads=1,
                     dtype="float64", stress_weight=1.0)
trainer = Trainer(config, progress=False)
trainer.run()
rank = int(os.environ.get("RANK", "0"))
torch.save(trainer.model.state_dict(), os.path.join(sys.argv[2], f"rank{{rank}}.pt"))
"""


def _run(tmp_path, dataset, out, processes):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(arch=CU))
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", f"--nproc-per-node={processes}",
                     "--master-port=29517"]  # fmt: skip
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        launcher + [str(script), str(dataset), str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_two_gloo_processes_equal_one(tmp_path):
    dataset = _emt_dataset(tmp_path / "d.xyz", n=26)  # 13 train frames: a last batch of one
    _run(tmp_path, dataset, tmp_path / "one", 1)
    _run(tmp_path, dataset, tmp_path / "two", 2)
    single = torch.load(tmp_path / "one" / "rank0.pt", weights_only=True)
    rank0 = torch.load(tmp_path / "two" / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "two" / "rank1.pt", weights_only=True)
    for key, value in single.items():
        assert torch.equal(rank0[key], rank1[key]), key  # identical on both ranks
        torch.testing.assert_close(rank0[key], value, rtol=0, atol=1e-6)
    assert (tmp_path / "two" / "best.json").is_file() and not (tmp_path / "two" / "x").exists()
