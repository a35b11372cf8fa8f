"""Demo: molecular dynamics with the shipped `tiny` student, then a check against its teacher.

Then, when `water-tiny` ships (distilled from SevenNet-0, a foundation GNN), the point of the
product on a periodic water box: its speed against SevenNet-0 and its force fidelity.

python examples/md_tiny.py                 # aspirin, 1 ps NVE + short validation (minutes)
python examples/md_tiny.py --steps 200 --validate-ps 0.05 --water-frames 1   # a smoke run
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
    p.add_argument("--water-frames", type=int, default=3, help="frames for water-tiny vs SevenNet")
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
    water_vs_sevennet(args.water_frames)


def _timed(calc, atoms, calls: int) -> float:
    """Seconds per energy+forces call (positions nudged so that nothing is cached)."""
    atoms = atoms.copy()
    atoms.calc = calc
    atoms.get_forces()  # warm-up
    t0 = time.perf_counter()
    for k in range(calls):
        atoms.positions[0, 0] += 1e-4 * (-1) ** k
        atoms.get_forces()
    return (time.perf_counter() - t0) / calls


def water_vs_sevennet(frames: int) -> None:
    """water-tiny vs its teacher SevenNet-0 on a 192-atom water box: speed and forces."""
    import importlib.util
    from pathlib import Path

    import torch
    from ase.io import read

    from ase_distill.metrics import fidelity_report
    from ase_distill.registry import shipped_students
    from training.teachers import make_teacher

    if "water-tiny" not in shipped_students() or importlib.util.find_spec("sevenn") is None:
        print("water-tiny vs SevenNet-0: skipped (student not shipped or sevenn missing)")
        return
    torch.set_num_threads(1)
    box = read(Path(__file__).parents[1] / "reports" / "water" / "box32_start.xyz")
    box = box.repeat((2, 1, 1))
    student = DistilledCalculator("water-tiny", dtype=torch.float32)
    teacher = make_teacher("sevennet-0").calculator
    t_student, t_teacher = _timed(student, box, 10), _timed(teacher, box, 2)
    rng = np.random.default_rng(1)
    pred, ref = [], []
    for _ in range(frames):
        frame = box.copy()
        frame.positions += rng.normal(scale=0.05, size=frame.positions.shape)
        for calc, out in ((student, pred), (teacher, ref)):
            frame.calc = calc
            out.append(frame.get_forces())
    pf, rf = np.concatenate(pred), np.concatenate(ref)
    n = len(box)
    report = fidelity_report(pf, rf, np.tile(box.numbers, frames))
    print(
        f"water-tiny vs SevenNet-0 on {n} atoms of water (1 thread): "
        f"{t_student * 1e3:.0f} ms vs {t_teacher * 1e3:.0f} ms per call = "
        f"{t_teacher / t_student:.0f}x faster; force R2 {report['force_r2']:.4f}, RMSE "
        f"{report['force_rmse']:.3f} eV/A on {frames} rattled frames"
    )


if __name__ == "__main__":
    main()
