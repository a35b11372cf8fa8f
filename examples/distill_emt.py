"""Distil your own student: a Cu cluster from ASE's EMT teacher, end to end in about a minute.

Any ASE calculator works as teacher (``--teacher module:Class``); for molecules use
``--teacher gfn2-xtb``; with orb-models and weights, ``--teacher orb-v3-conservative-inf-omat``.
"""

import argparse
from pathlib import Path

from ase.cluster import Icosahedron
from ase.io import write

from ase_distill import DistilledCalculator
from training.config import GenerateConfig, MDConfig, RattleConfig, TrainConfig
from training.generate import generate
from training.train import train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--output", default="runs/example-emt")
    p.add_argument("--epochs", type=int, default=30)
    args = p.parse_args()
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    write(out / "cu13.xyz", Icosahedron("Cu", 2, latticeconstant=3.6))

    summary = generate(
        GenerateConfig(
            teacher="emt",
            seeds=[str(out / "cu13.xyz")],
            output=str(out / "data"),
            md=MDConfig(temperatures=[300.0, 900.0], steps=200, interval=5),
            rattle=RattleConfig(sigmas=[0.05, 0.1], count=10),
        )
    )
    print(f"{summary['frames']} frames labelled by {summary['teacher']['name']}")
    result = train(
        TrainConfig(
            dataset=str(out / "data" / "dataset.xyz"),
            output=str(out / "student"),
            size="ultra-tiny",
            architecture={"species": [29], "cutoff": 4.0},
            epochs=args.epochs,
            batch_size=8,
            lr=3e-3,
        )
    )
    m = result["metrics"]["validation"]
    print(f"validation force R2 {m['force_r2']:.3f}, RMSE {m['force_rmse']:.3f} eV/A")
    calc = DistilledCalculator.from_checkpoint(out / "student" / "best")
    print(
        f"load it with DistilledCalculator.from_checkpoint('{out / 'student' / 'best'}'): "
        f"{calc.model.count_parameters()} parameters"
    )


if __name__ == "__main__":
    main()
