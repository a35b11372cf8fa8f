"""Density of a periodic liquid from the student's own NPT run (Berendsen barostat)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from tqdm.auto import tqdm

from ase_distill.checkpoint import atomic_write_json
from ase_distill.md import initial_velocities
from md_validation import plots

#: Isothermal compressibility of liquid water near 300 K (1/bar).
WATER_COMPRESSIBILITY_PER_BAR = 4.57e-5
AMU_PER_A3_TO_G_CM3 = 1.66053906660


def density(atoms: Atoms) -> float:
    """Mass density in g/cm^3."""
    return float(atoms.get_masses().sum() / atoms.get_volume() * AMU_PER_A3_TO_G_CM3)


def npt_density(
    structure: Atoms,
    calc: Calculator,
    out_dir: str | Path,
    temperature_K: float = 300.0,
    ps: float = 10.0,
    timestep_fs: float = 0.5,
    pressure_bar: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Run isotropic Berendsen NPT; density mean and spread over the second half of the run.

    Writes ``density.json`` and ``density.png`` to ``out_dir``.

    Raises:
        ValueError: a structure that is not fully periodic, or a non-positive length.
    """
    from ase.md.nptberendsen import NPTBerendsen

    if not structure.pbc.all():
        raise ValueError("NPT density needs a fully periodic structure (a liquid box).")
    if not (ps > 0 and timestep_fs > 0):
        raise ValueError("--npt-ps and the time step must be > 0.")
    atoms = initial_velocities(structure, temperature_K, seed)
    atoms.calc = calc
    dyn = NPTBerendsen(
        atoms,
        timestep=timestep_fs * units.fs,
        temperature_K=temperature_K,
        pressure_au=pressure_bar * units.bar,
        taut=100 * units.fs,
        taup=1000 * units.fs,
        compressibility_au=WATER_COMPRESSIBILITY_PER_BAR / units.bar,
    )
    steps, interval = int(round(ps * 1000 / timestep_fs)), 20
    times, densities = [], []
    for k in tqdm(range(steps // interval), desc="NPT density", disable=not progress):
        dyn.run(interval)
        times.append((k + 1) * interval * timestep_fs / 1000)
        densities.append(density(atoms))
    half = np.asarray(densities[len(densities) // 2 :])
    result = {
        "n_atoms": len(atoms),
        "temperature_K": temperature_K,
        "pressure_bar": pressure_bar,
        "ps": ps,
        "start_density_g_cm3": density(structure),
        "density_g_cm3": float(half.mean()),
        "density_std_g_cm3": float(half.std()),
        "time_ps": times,
        "density_series": densities,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result["figure"] = plots.series_plot(times, densities, "density (g/cm3)", out / "density.png")
    atomic_write_json(out / "density.json", result)
    return result
