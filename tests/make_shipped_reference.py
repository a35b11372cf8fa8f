"""Write tests/data/shipped_reference.json: energies and forces of the shipped students on fixed
structures, float64. Regenerate only when a student is retrained on purpose (the consolidation
test compares against these stored values)."""

import json
from pathlib import Path

import numpy as np
from ase.build import molecule

from ase_distill import DistilledCalculator, shipped_students

OUT = Path(__file__).parent / "data" / "shipped_reference.json"


def structures():
    """Fixed molecules and one periodic cell (deterministic)."""
    out = {name: molecule(name) for name in ("CH3CH2OH", "C6H6", "CH3CONH2", "H2O")}
    rng = np.random.default_rng(7)
    box = molecule("H2O").repeat((1, 1, 1))
    cell = []
    for k in range(8):
        w = molecule("H2O")
        w.rotate(rng.uniform(0, 360), rng.normal(size=3), center=(0, 0, 0))
        w.positions += (np.array([k % 2, (k // 2) % 2, k // 4]) + 0.5) * 3.1
        cell.append(w)
    box = cell[0]
    for w in cell[1:]:
        box += w
    box.set_cell([6.2, 6.2, 6.2])
    box.pbc = True
    out["water8_pbc"] = box
    return out


def compute():
    """``{student: {structure: {energy, forces, stress?}}}``."""
    data = {}
    for name in shipped_students():
        calc = DistilledCalculator(name)
        data[name] = {}
        for label, atoms in structures().items():
            if not set(atoms.numbers) <= set(calc.species):  # e.g. water students: H, O only
                continue
            atoms.calc = calc
            row = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces().tolist()}
            if atoms.pbc.all():
                row["stress"] = atoms.get_stress().tolist()
            data[name][label] = row
    return data


if __name__ == "__main__":
    OUT.write_text(json.dumps(compute(), indent=1) + "\n")
    print(f"wrote {OUT}")
