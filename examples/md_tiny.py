"""Demo: molecular dynamics with the shipped `tiny` student, then a check against its teacher.

python examples/md_tiny.py                 # aspirin, 1 ps NVE + short validation (minutes)
python examples/md_tiny.py --steps 200 --validate-ps 0.05   # a quick smoke run
"""

import argparse
import time

import numpy as np
from ase import units
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
from ase.md.verlet import VelocityVerlet
from tqdm.auto import tqdm

from ase_distill import DistilledCalculator
from training.structures import load_structure


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--molecule", default="aspirin", help="ASE name, drug name, file, smiles:...")
    p.add_argument("--steps", type=int, default=2000, help="NVE steps of 0.5 fs")
    p.add_argument("--validate-ps", type=float, default=1.0, help="ps of NVE and NVT vs teacher")
    p.add_argument("--output", default="reports/demo")
    args = p.parse_args()

    name, atoms = load_structure(args.molecule)
    calc = DistilledCalculator("tiny")
    atoms.calc = calc
    print(
        f"{name}: {len(atoms)} atoms, student 'tiny' ({calc.model.count_parameters()} params, "
        f"teacher {calc.card['teacher']['name']})"
    )
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    Stationary(atoms)
    ZeroRotation(atoms)
    dyn = VelocityVerlet(atoms, 0.5 * units.fs)
    e0 = atoms.get_total_energy()
    t0 = time.perf_counter()
    with tqdm(total=args.steps, desc="NVE 300 K") as bar:
        for _ in range(args.steps // 50):
            dyn.run(50)
            bar.update(50)
            bar.set_postfix(T=f"{atoms.get_temperature():.0f}K")
    seconds = time.perf_counter() - t0
    de = (atoms.get_total_energy() - e0) / len(atoms) * 1000
    print(
        f"{args.steps} steps in {seconds:.1f} s ({args.steps / seconds:.0f} steps/s); "
        f"total energy change {de:+.3f} meV/atom"
    )

    from md_validation.suite import ValidationSettings, validate
    from training.teachers import make_teacher

    settings = ValidationSettings(
        temperature_K=300,
        nve_ps=args.validate_ps,
        nvt_ps=args.validate_ps,
        interval=10,
        relabel_every=2,
    )
    out = f"{args.output}/{name}_tiny"
    metrics = validate(
        atoms.copy(),
        calc,
        make_teacher("gfn2-xtb").calculator,
        settings,
        out,
        "tiny",
        "gfn2-xtb",
        name,
    )
    print(metrics["verdict"])
    print(f"report: {out}/report.md")


if __name__ == "__main__":
    main()
