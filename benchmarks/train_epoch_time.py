"""Epoch time of student training on one device, for planning (issue: GPU path).

Trains ``--size`` for ``--epochs`` epochs on a generated dataset with the project's trainer and
writes the mean seconds per epoch (first epoch excluded: CUDA start-up, kernel build) to a
JSON file. Run it once per device in the same session and compare the two files::

    python -m benchmarks.train_epoch_time --dataset data/gpu-bench/dataset.xyz --device cuda \
        --out results/train_cuda.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch

from training.config import TrainConfig
from training.train import hardware, train


def main(argv: list[str] | None = None) -> dict:
    """Time the epochs; returns (and writes) the summary."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--size", default="tiny")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(
            dataset=args.dataset,
            output=tmp,
            size=args.size,
            epochs=args.epochs,
            batch_size=args.batch_size,
            threads=args.threads,
            device=args.device,
            energy_weight=50.0,
        )
        train(config, progress=False)
        history = json.loads((Path(tmp) / "metrics.json").read_text())["epochs"]
    cumulative = [row["seconds"] for row in history]
    per_epoch = [b - a for a, b in zip([0.0] + cumulative[:-1], cumulative)]
    steady = per_epoch[1:] or per_epoch
    summary = {
        "device": args.device,
        "hardware": hardware(args.device),
        "host": platform.node(),
        "torch_threads": torch.get_num_threads(),
        "size": args.size,
        "batch_size": args.batch_size,
        "epoch_seconds": per_epoch,
        "mean_epoch_seconds_after_first": sum(steady) / len(steady),
        "final_val_force_rmse": history[-1]["val_force_rmse"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
