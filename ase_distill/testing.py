"""Physics checks every student must pass (used by the test suite; usable on your own models).

Each ``check_*`` function takes a :class:`~ase_distill.model.StudentModel`, evaluates it in
float64 and raises ``AssertionError`` with the numbers when a property does not hold.

Tolerances and why:

* finite differences: central differences with step ``h`` have truncation error
  ~h^2 |E'''| / 6 and rounding error ~1e-16 |E| / h. Trained students have stiff repulsive
  walls in the compact random test clusters (|E'''| up to ~1e3 eV/A^3): h = 1e-4 A gave
  1.5e-6 eV/A there, h = 2e-5 A gives < 1e-7 while rounding stays ~1e-9 (|E| ~ 300 eV).
  So h = 2e-5 A (forces) and 1e-5 (strain); we allow 1e-6 eV/A (and 1e-6 eV/A^3).
* invariances and additivity: exact in exact arithmetic; float64 summation-order noise on
  energies of O(10 eV) is ~1e-13, so we allow 1e-9 eV (1e-8 eV/A on forces).
* cutoff smoothness: the cosine cutoff vanishes with zero slope, so an atom delta inside the
  cutoff changes the energy by O(delta^2) and sees a force of O(delta); at delta = 1e-4 A we allow
  1e-6 eV and 1e-3 eV/A.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from ase import Atoms

from ase_distill.graph import atoms_to_graph
from ase_distill.model import ConservativePotential, StudentModel

FD_FORCE_STEP = 2e-5  # Angstrom (see the module docstring)
FD_STRESS_STEP = 1e-5  # dimensionless strain
FD_TOL = 1e-6
EXACT_TOL = 1e-9
CUTOFF_DELTA = 1e-4


def _float64_view(model: StudentModel) -> StudentModel:
    """``model`` itself when it already is float64 on the CPU, else a float64 CPU copy.

    The checks never change the caller's model: ``model.double()`` would convert it in place.
    """
    p = next(model.parameters())
    if p.dtype == torch.float64 and p.device.type == "cpu":
        return model
    return copy.deepcopy(model).to("cpu", torch.float64)


def model_fingerprint(model: StudentModel) -> dict:
    """What a check must leave as it was: dtypes, devices, grad flags and values of the state."""
    return {
        name: (t.dtype, t.device, t.requires_grad, t.detach().cpu().clone())
        for name, t in [*model.named_parameters(), *model.named_buffers()]
    } | {"training": model.training}


def check_model_unchanged(before: dict, model: StudentModel) -> None:
    """Raise ``AssertionError`` if ``model`` differs from its earlier :func:`model_fingerprint`."""
    after = model_fingerprint(model)
    assert before.keys() == after.keys(), "the model's parameters or buffers changed"
    for name, old in before.items():
        new = after[name]
        if name == "training":
            assert old == new, "a check switched the model's train/eval mode"
            continue
        assert old[:3] == new[:3], f"{name}: dtype, device or requires_grad changed"
        assert torch.equal(old[3], new[3]), f"{name}: values changed"


def evaluate(
    model: StudentModel, structures: Atoms | list[Atoms], stress: bool = False
) -> dict[str, np.ndarray]:
    """Energy (B,), forces (N, 3) and optionally stress (B, 3, 3) in float64, as numpy.

    Runs on a float64 copy unless ``model`` already is float64 on the CPU; never mutates it.
    """
    model = _float64_view(model)
    graph = atoms_to_graph(structures, model.cutoff, model.species, dtype=torch.float64)
    out = ConservativePotential(model).evaluate(graph, forces=True, stress=stress)
    return {k: v.detach().numpy() for k, v in out.items()}


def energy(model: StudentModel, atoms: Atoms) -> float:
    """Total energy (eV) of one structure."""
    return float(evaluate(model, atoms)["energy"][0])


def randomize_readout(model: StudentModel, seed: int = 0) -> StudentModel:
    """Give a random-weight model a non-trivial energy reference and scale (for tests)."""
    g = torch.Generator().manual_seed(seed)
    ref = {z: float(torch.randn((), generator=g, dtype=torch.float64)) for z in model.species}
    model.set_energy_reference(ref, scale=1.5)
    return model


def random_molecule(
    model: StudentModel, n: int = 8, seed: int = 0, min_dist: float = 1.0, spread: float = 1.6
) -> Atoms:
    """A compact random cluster of the model's elements with no pair closer than ``min_dist``."""
    rng = np.random.default_rng(seed)
    positions: list[np.ndarray] = []
    while len(positions) < n:
        p = rng.normal(scale=spread, size=3)
        if all(np.linalg.norm(p - q) >= min_dist for q in positions):
            positions.append(p)
    numbers = rng.choice(model.species, size=n)
    return Atoms(numbers=numbers, positions=np.array(positions))


def random_crystal(model: StudentModel, n: int = 4, seed: int = 0, a: float = 3.6) -> Atoms:
    """A small skewed periodic cell (edges below the cutoff) of the model's elements."""
    rng = np.random.default_rng(seed)
    cell = np.array([[a, 0, 0], [0.4, a * 1.05, 0], [0.3, -0.5, a * 0.95]])
    while True:
        frac = rng.random((n, 3))
        atoms = Atoms(numbers=rng.choice(model.species, size=n), cell=cell, pbc=True)
        atoms.set_scaled_positions(frac)
        d = atoms.get_all_distances(mic=True)[np.triu_indices(n, 1)]
        if d.size == 0 or d.min() > 1.0:
            return atoms


def _close(a, b, tol: float, what: str) -> None:
    err = float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
    assert err <= tol, f"{what}: max deviation {err:.3e} exceeds tolerance {tol:.1e}"


def check_finite_difference_forces(model: StudentModel, atoms: Atoms, step=FD_FORCE_STEP) -> None:
    """Forces equal ``-dE/dr`` by central differences."""
    forces = evaluate(model, atoms)["forces"]
    fd = np.zeros_like(forces)
    for a in range(len(atoms)):
        for k in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[a, k] += step
            minus.positions[a, k] -= step
            fd[a, k] = -(energy(model, plus) - energy(model, minus)) / (2 * step)
    _close(forces, fd, FD_TOL, "forces vs finite differences")


def check_finite_difference_stress(
    model: StudentModel, atoms: Atoms, step: float = FD_STRESS_STEP
) -> None:
    """Stress equals ``(1/V) dE/d(strain)`` by central differences of a symmetric strain."""
    stress = evaluate(model, atoms, stress=True)["stress"][0]
    fd = np.zeros((3, 3))
    volume = atoms.get_volume()
    for a in range(3):
        for b in range(3):
            values = []
            for sign in (1, -1):
                strain = np.eye(3)
                strain[a, b] += sign * step / 2
                strain[b, a] += sign * step / 2
                deformed = atoms.copy()
                deformed.set_cell(atoms.cell[:] @ strain, scale_atoms=True)
                values.append(energy(model, deformed))
            fd[a, b] = (values[0] - values[1]) / (2 * step) / volume
    _close(stress, fd, FD_TOL, "stress vs finite differences")


def check_invariances(model: StudentModel, atoms: Atoms, seed: int = 0) -> None:
    """Energy invariant and forces covariant under rotation, translation and permutation."""
    rng = np.random.default_rng(seed)
    ref = evaluate(model, atoms)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotated = atoms.copy()
    rotated.positions = atoms.positions @ q.T
    if atoms.pbc.any():
        rotated.set_cell(atoms.cell[:] @ q.T, scale_atoms=False)
    rot = evaluate(model, rotated)
    _close(rot["energy"], ref["energy"], EXACT_TOL, "energy under rotation")
    _close(rot["forces"], ref["forces"] @ q.T, 10 * EXACT_TOL, "forces under rotation")
    moved = atoms.copy()
    moved.positions += rng.normal(scale=3.0, size=3)
    mv = evaluate(model, moved)
    _close(mv["energy"], ref["energy"], EXACT_TOL, "energy under translation")
    _close(mv["forces"], ref["forces"], 10 * EXACT_TOL, "forces under translation")
    perm = rng.permutation(len(atoms))
    pm = evaluate(model, atoms[perm])
    _close(pm["energy"], ref["energy"], EXACT_TOL, "energy under permutation")
    _close(pm["forces"], ref["forces"][perm], 10 * EXACT_TOL, "forces under permutation")


def check_smooth_cutoff(model: StudentModel, delta: float = CUTOFF_DELTA) -> None:
    """Energy and forces go continuously to their isolated values as a pair crosses the cutoff."""
    za, zb = model.species[0], model.species[-1]
    rc = model.cutoff

    def dimer(r: float) -> Atoms:
        return Atoms(numbers=[za, zb], positions=[[0, 0, 0], [r, 0, 0]])

    inside = evaluate(model, dimer(rc - delta))
    outside = evaluate(model, dimer(rc + delta))
    far = evaluate(model, dimer(3 * rc))
    _close(outside["energy"], far["energy"], EXACT_TOL, "energy beyond the cutoff")
    _close(inside["energy"], outside["energy"], 1e-6, "energy jump across the cutoff")
    _close(inside["forces"], 0.0, 1e-3, "force just inside the cutoff")
    # the energy along the approach is smooth: no step larger than the force bound allows
    rs = np.linspace(rc - 0.5, rc + 0.1, 61)
    es = np.array([evaluate(model, dimer(r))["energy"][0] for r in rs])
    fmax = max(abs(evaluate(model, dimer(r))["forces"][1, 0]) for r in rs)
    assert np.max(np.abs(np.diff(es))) <= fmax * (rs[1] - rs[0]) * 1.01 + EXACT_TOL, (
        "energy along a dimer approach jumps by more than the forces allow"
    )


def check_fragments_add_up(model: StudentModel, a: Atoms, b: Atoms) -> None:
    """Two fragments farther apart than the cutoff have the sum of their energies."""
    gap = model.cutoff + 1.0
    b = b.copy()
    b.positions += a.positions.max(axis=0) - b.positions.min(axis=0) + gap
    together = evaluate(model, a + b)["energy"][0]
    apart = energy(model, a) + energy(model, b)
    _close(together, apart, EXACT_TOL, "fragment energies")


def check_supercell_extensive(model: StudentModel, crystal: Atoms) -> None:
    """A periodic ``n``-fold supercell has ``n`` times the unit-cell energy."""
    e1 = energy(model, crystal)
    for reps in ((2, 1, 1), (1, 2, 2)):
        n = int(np.prod(reps))
        en = energy(model, crystal.repeat(reps))
        _close(en, n * e1, n * EXACT_TOL * 10, f"supercell {reps} energy")


def check_batch_equals_single(model: StudentModel, structures: list[Atoms]) -> None:
    """One batched forward equals one-by-one evaluation (energies and forces)."""
    batched = evaluate(model, structures)
    start = 0
    for b, atoms in enumerate(structures):
        single = evaluate(model, atoms)
        _close(batched["energy"][b], single["energy"][0], EXACT_TOL, f"batched energy {b}")
        _close(
            batched["forces"][start : start + len(atoms)],
            single["forces"],
            10 * EXACT_TOL,
            f"batched forces {b}",
        )
        start += len(atoms)


def run_all_checks(model: StudentModel, seed: int = 0) -> None:
    """Run every check on small structures built from the model's own elements.

    The checks evaluate a float64 copy (see :func:`evaluate`); afterwards the model must be
    exactly as it was (dtype, device, parameters, grad flags, mode).
    """
    before = model_fingerprint(model)
    _run_checks(_float64_view(model), seed)
    check_model_unchanged(before, model)


def _run_checks(model: StudentModel, seed: int) -> None:
    mol = random_molecule(model, 6, seed)
    crystal = random_crystal(model, 3, seed)
    check_finite_difference_forces(model, mol)
    check_finite_difference_forces(model, crystal)
    check_finite_difference_stress(model, crystal)
    check_invariances(model, mol, seed)
    check_invariances(model, crystal, seed)
    check_smooth_cutoff(model)
    check_fragments_add_up(model, mol, random_molecule(model, 4, seed + 1))
    check_supercell_extensive(model, crystal)
    check_batch_equals_single(model, [mol, crystal, random_molecule(model, 5, seed + 2)])
