"""Periodic water seeds for distilling a foundation GNN (SevenNet-0) into water students.

Liquid boxes are equilibrated cheaply with a flexible TIP3P (ASE's TIP3P between molecules plus
SPC/Fw-strength harmonic bonds and angles within them; RATTLE constraints in Python cost 0.4 s
per step, this 5 ms) at the box's own temperature, so the teacher is spent on labelling
liquid-like configurations rather than on melting a grid. The seeds then go through the usual
generation tasks (teacher NVT, rattles, cell strains), labelled by the teacher with energy,
forces and stress::

    python -m training.water data/water-seeds     # writes box_*.xyz, slab_*.xyz, seeds.json
    ase-distill generate --config training/configs/water_sevennet.yaml
    python -m training.water --ice data/water-seeds   # writes ice_*.xyz (ice Ih, 96 atoms)
    ase-distill generate --config training/configs/water_ice.yaml

Densities 0.9-1.1 g/cm3 and temperatures 250-450 K are drawn per box from a fixed seed. A liquid
slab (a box with 10 A of vacuum along z) adds a surface.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.mixing import SumCalculator
from ase.calculators.tip3p import TIP3P, angleHOH, rOH
from ase.io import write
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

#: Mass of one water molecule in grams.
WATER_GRAMS = 18.015 / 6.02214076e23


def water_box(n_molecules: int, density: float = 1.0, seed: int = 0) -> Atoms:
    """``n_molecules`` waters (O, H, H order) in a cubic periodic box at ``density`` g/cm3.

    Molecules sit on a jittered cubic grid with random orientations, in TIP3P geometry.
    """
    rng = np.random.default_rng(seed)
    length = (n_molecules * WATER_GRAMS / density * 1e24) ** (1 / 3)  # cm3 -> A3
    side = int(np.ceil(n_molecules ** (1 / 3) - 1e-9))
    spacing = length / side
    base = Atoms(
        "OH2",
        positions=[
            [0, 0, 0],
            [rOH, 0, 0],
            [rOH * np.cos(np.radians(angleHOH)), rOH * np.sin(np.radians(angleHOH)), 0],
        ],
    )
    base.positions -= base.get_center_of_mass()
    atoms = Atoms(cell=[length] * 3, pbc=True)
    sites = [(i, j, k) for i in range(side) for j in range(side) for k in range(side)]
    for index in sorted(rng.choice(len(sites), size=n_molecules, replace=False)):
        w = base.copy()
        w.rotate(rng.uniform(0, 360), rng.normal(size=3), center=(0, 0, 0))
        w.positions += (np.array(sites[index]) + 0.5) * spacing + rng.normal(scale=0.05, size=3)
        atoms += w
    return atoms


KCAL = units.kcal / units.mol
#: SPC/Fw force constants (Wu, Tepper, Voth 2006) around the TIP3P geometry.
K_BOND = 1059.162 * KCAL  # eV / A^2
K_ANGLE = 75.90 * KCAL  # eV / rad^2


class HarmonicWater(Calculator):
    """Harmonic O-H bonds and H-O-H angles of waters ordered O, H, H (intramolecular only)."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        """Energy and forces of the bond and angle terms (minimum-image vectors)."""
        super().calculate(atoms, properties, system_changes)
        pos = self.atoms.positions.reshape(-1, 3, 3)
        cell, pbc = self.atoms.cell, self.atoms.pbc
        from ase.geometry import find_mic

        d1, _ = find_mic((pos[:, 1] - pos[:, 0]), cell, pbc)
        d2, _ = find_mic((pos[:, 2] - pos[:, 0]), cell, pbc)
        r1, r2 = np.linalg.norm(d1, axis=1), np.linalg.norm(d2, axis=1)
        u1, u2 = d1 / r1[:, None], d2 / r2[:, None]
        cos = np.clip((u1 * u2).sum(1), -1.0, 1.0)
        theta = np.arccos(cos)
        dt = theta - np.radians(angleHOH)
        energy = 0.5 * K_BOND * ((r1 - rOH) ** 2 + (r2 - rOH) ** 2).sum()
        energy += 0.5 * K_ANGLE * (dt**2).sum()
        f = np.zeros_like(pos)
        f1 = -K_BOND * (r1 - rOH)[:, None] * u1
        f2 = -K_BOND * (r2 - rOH)[:, None] * u2
        # dtheta/dx for the two H atoms: -(u_other - cos u_self) / (r sin theta)
        sin = np.maximum(np.sin(theta), 1e-8)
        g1 = -(u2 - cos[:, None] * u1) / (r1 * sin)[:, None]
        g2 = -(u1 - cos[:, None] * u2) / (r2 * sin)[:, None]
        f1 -= K_ANGLE * dt[:, None] * g1
        f2 -= K_ANGLE * dt[:, None] * g2
        f[:, 1], f[:, 2], f[:, 0] = f1, f2, -(f1 + f2)
        self.results = {"energy": float(energy), "forces": f.reshape(-1, 3)}


def flexible_tip3p(atoms: Atoms) -> Calculator:
    """TIP3P between molecules plus :class:`HarmonicWater` within them."""
    return SumCalculator([TIP3P(rc=min(atoms.cell.lengths()) / 2 - 0.6), HarmonicWater()])


def equilibrate_tip3p(atoms: Atoms, temperature: float, steps: int, seed: int = 0) -> Atoms:
    """Flexible-TIP3P Langevin NVT (0.5 fs) from ``atoms``; returns the last frame, wrapped."""
    atoms = atoms.copy()
    atoms.calc = flexible_tip3p(atoms)
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    dyn = Langevin(
        atoms, 0.5 * units.fs, temperature_K=temperature, friction=0.02, fixcm=False, rng=rng
    )
    dyn.run(steps)
    out = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True)
    out.wrap()
    return out


def slab(atoms: Atoms, vacuum: float = 10.0) -> Atoms:
    """A liquid slab: ``atoms`` with ``vacuum`` Angstrom added along z (still periodic)."""
    out = atoms.copy()
    out.wrap()
    cell = out.cell[:].copy()
    cell[2, 2] += vacuum
    out.set_cell(cell, scale_atoms=False)
    return out


#: Ice Ih lattice constants (A) near 250 K (Rottger et al. 1994): O-O 2.75 A, 0.92 g/cm3.
ICE_A, ICE_C = 4.50, 7.33
#: O-H bond length placed on each hydrogen bond (A).
ICE_OH = 0.98


def ice_ih(repeat: tuple[int, int, int] = (2, 2, 2), seed: int = 0) -> Atoms:
    """Proton-disordered hexagonal ice Ih (O, H, H order per molecule) obeying the ice rules.

    Oxygens sit on the wurtzite lattice. Every O has four hydrogen bonds, so the bond network
    has an Euler circuit; orienting each bond along one circuit (a random one, from ``seed``)
    gives every O two outgoing bonds, and a hydrogen on each outgoing bond satisfies both
    Bernal-Fowler rules: two H per O and one H per bond.
    """
    from ase.build import bulk
    from ase.neighborlist import neighbor_list

    rng = np.random.default_rng(seed)
    oxygens = bulk("ZnO", "wurtzite", a=ICE_A, c=ICE_C, u=3 / 8).repeat(repeat)
    oxygens.set_chemical_symbols(["O"] * len(oxygens))
    first, second, vectors = neighbor_list("ijD", oxygens, 3.0)
    if np.bincount(first, minlength=len(oxygens)).tolist() != [4] * len(oxygens):
        raise ValueError(f"repeat {repeat} is too small for a 4-connected ice network.")
    out_bonds = _euler_orientation(first, second, vectors, len(oxygens), rng)
    atoms = Atoms(cell=oxygens.cell, pbc=True)
    for o in range(len(oxygens)):
        hydrogens = [oxygens.positions[o] + ICE_OH * v / np.linalg.norm(v) for v in
                     vectors[out_bonds[o]]]  # fmt: skip
        atoms += Atoms("OH2", positions=[oxygens.positions[o], *hydrogens])
    atoms.wrap()
    return atoms


def _euler_orientation(first, second, vectors, n: int, rng) -> list[list[int]]:
    """For each vertex, the pair indices of its outgoing bonds along a random Euler circuit.

    ``neighbor_list`` lists every bond twice (i->j with vector D and j->i with -D); walking
    one direction uses up both.
    """
    partner = np.empty(len(first), dtype=int)
    for k in range(len(first)):
        match = (first == second[k]) & (second == first[k])
        match &= np.abs(vectors + vectors[k]).sum(axis=1) < 1e-6
        partner[k] = int(np.flatnonzero(match)[0])
    unused = {v: list(rng.permutation(np.flatnonzero(first == v))) for v in range(n)}
    used = np.zeros(len(first), dtype=bool)
    out: list[list[int]] = [[] for _ in range(n)]
    stack, path = [int(rng.integers(n))], []
    while stack:  # Hierholzer's algorithm, recording the direction each bond is walked
        v = stack[-1]
        while unused[v] and used[unused[v][-1]]:
            unused[v].pop()
        if unused[v]:
            k = unused[v].pop()
            used[k] = used[partner[k]] = True
            out[v].append(int(k))
            stack.append(int(second[k]))
        else:
            path.append(stack.pop())
    return out


def build_seeds(
    out_dir: str | Path, n_boxes: int = 30, n_molecules: int = 32, steps: int = 3000, seed: int = 0
) -> dict:
    """Write equilibrated boxes ``box_XX.xyz`` and one slab; returns (and writes) their record."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    record = {"n_molecules": n_molecules, "tip3p_steps": steps, "seeds": {}}
    for k in range(n_boxes):
        density, temperature = float(rng.uniform(0.9, 1.1)), float(rng.uniform(250, 450))
        box = water_box(n_molecules, density, seed=seed * 1000 + k)
        box = equilibrate_tip3p(box, temperature, steps, seed=seed * 1000 + k)
        name = f"box_{k:02d}"
        box.info.update({"density_g_cm3": density, "tip3p_temperature_K": temperature})
        write(out / f"{name}.xyz", box, format="extxyz")
        record["seeds"][name] = {"density_g_cm3": density, "temperature_K": temperature}
        print(f"{name}: {density:.3f} g/cm3, {temperature:.0f} K", flush=True)
    surface = slab(water_box(n_molecules, 1.0, seed=seed * 1000 + 999))
    surface = equilibrate_tip3p(surface, 300.0, steps, seed=seed * 1000 + 999)
    write(out / "slab_00.xyz", surface, format="extxyz")
    record["seeds"]["slab_00"] = {"density_g_cm3": 1.0, "temperature_K": 300.0, "vacuum_A": 10}
    (out / "seeds.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def build_ice_seeds(out_dir: str | Path, n_cells: int = 3) -> list[Path]:
    """Write ``ice_XX.xyz``: 96-atom ice Ih cells, each with its own proton arrangement."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n_cells):
        paths.append(out / f"ice_{k:02d}.xyz")
        write(paths[-1], ice_ih((2, 2, 2), seed=k), format="extxyz")
    return paths


if __name__ == "__main__":
    if sys.argv[1:2] == ["--ice"]:  # python -m training.water --ice data/water-seeds
        print(
            "\n".join(
                map(str, build_ice_seeds(sys.argv[2] if len(sys.argv) > 2 else "data/water-seeds"))
            )
        )
    else:
        build_seeds(sys.argv[1] if len(sys.argv) > 1 else "data/water-seeds")
