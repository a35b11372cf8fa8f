"""Atom-steps per second of tiny's MD on one device: ASE's loop against :class:`DeviceMD`.

Water boxes at 1.0 g/cm^3, 300 K, NVE, 0.5 fs, float32. Modes: ``ase`` (VelocityVerlet with
DistilledCalculator: host neighbour list every step), ``device`` (neighbour list and state on
the device, Verlet skin 0.5 A) and ``device-compiled`` (plus inductor). The JSON is rewritten
after every row, so a run stopped at its time limit keeps what it measured::

    python -m benchmarks.device_md_bench OUT.json --molecules 333 3333 33333 --steps 30
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from ase import units
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

from ase_distill.device_md import DeviceMD
from benchmarks.systems import water_box


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_device(atoms, device: str, compile: bool, steps: int) -> dict:
    """Build, warm up (compile), then time ``steps`` steps of :class:`DeviceMD`."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    md = DeviceMD(atoms, "tiny", device=device, dtype=torch.float32, compile=compile)
    md.run(3)
    _sync(device)
    warmup = time.perf_counter() - t0
    e0, rebuilds0 = float(md.energy) + md.kinetic_energy(), md.rebuilds
    t0 = time.perf_counter()
    md.run(steps)
    _sync(device)
    seconds = (time.perf_counter() - t0) / steps
    drift = (float(md.energy) + md.kinetic_energy() - e0) / len(atoms)
    return {
        "seconds_per_step": seconds,
        "warmup_seconds": warmup,
        "rebuilds": md.rebuilds - rebuilds0,
        "edges": int(md.edge_index.shape[1]),
        "total_energy_change_ev_per_atom": drift,
        "temperature_K": md.temperature(),
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device != "cpu" else None,
    }


def time_ase(atoms, device: str, steps: int) -> dict:
    """``steps`` of ASE's VelocityVerlet with the calculator (host neighbour list)."""
    from ase.md.verlet import VelocityVerlet

    from ase_distill import DistilledCalculator

    atoms = atoms.copy()
    atoms.calc = DistilledCalculator("tiny", device=device, dtype=torch.float32, compile=False)
    dyn = VelocityVerlet(atoms, 0.5 * units.fs)
    dyn.run(2)
    t0 = time.perf_counter()
    dyn.run(steps)
    _sync(device)
    return {"seconds_per_step": (time.perf_counter() - t0) / steps}


def main(argv: list[str] | None = None) -> dict:
    """Measure every (size, mode); returns and writes the results."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--molecules", type=int, nargs="+", default=[333, 3333, 33333])
    p.add_argument("--modes", nargs="+", default=["ase", "device", "device-compiled"])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    result = {"device": name, "torch": torch.__version__, "rows": []}
    for n in args.molecules:
        atoms = water_box(n)
        MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
        for mode in args.modes:
            steps = max(3, args.steps // 3) if mode == "ase" else args.steps
            try:
                if mode == "ase":
                    row = time_ase(atoms, args.device, steps)
                else:
                    row = time_device(atoms, args.device, mode == "device-compiled", steps)
            except Exception as exc:  # noqa: BLE001 (a failed mode is a result; go on)
                result["rows"].append({"mode": mode, "n_atoms": len(atoms), "error": repr(exc)})
                print(f"{len(atoms):>7} atoms {mode:>16}: failed: {exc!r}"[:400], flush=True)
                continue
            row.update(mode=mode, n_atoms=len(atoms), steps=steps)
            row["atom_steps_per_s"] = len(atoms) / row["seconds_per_step"]
            result["rows"].append(row)
            Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
            print(f"{len(atoms):>7} atoms {mode:>16}: {row['atom_steps_per_s']:.3g} atom-steps/s "
                  f"({row['seconds_per_step'] * 1e3:.2f} ms/step)", flush=True)  # fmt: skip
    return result


if __name__ == "__main__":
    main()
