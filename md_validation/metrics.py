"""MD metrics: energy drift, thermostat quality, structure (RDF / distances), stability."""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.neighborlist import natural_cutoffs, neighbor_list
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from ase_distill.metrics import force_metrics

#: Fu et al. 2023: a run is unstable once any initial bond length deviates by more than this (A).
BOND_DEVIATION_LIMIT = 0.5


def energy_drift(time_ps: np.ndarray, total_energy: np.ndarray, n_atoms: int) -> dict[str, float]:
    """NVE energy conservation.

    Returns:
        Two numbers: ``drift_mev_per_atom_per_ps``, the slope of a linear fit of the total
        energy per atom, and ``max_deviation_mev_per_atom``, the largest |E(t) - E(0)| per
        atom. (The drift ratio needs the kinetic energy: :func:`drift_ratio`.)

    Raises:
        ValueError: fewer than two samples.
    """
    t = np.asarray(time_ps, dtype=float)
    e = np.asarray(total_energy, dtype=float) / n_atoms * 1000.0
    if len(t) < 2:
        raise ValueError("energy drift needs at least two samples; run more steps.")
    slope = float(np.polyfit(t, e, 1)[0])
    return {
        "drift_mev_per_atom_per_ps": slope,
        "max_deviation_mev_per_atom": float(np.max(np.abs(e - e[0]))),
    }


def drift_ratio(time_ps, total_energy, kinetic_energy) -> float:
    """Accumulated drift over the run divided by the std of the kinetic energy (MLIP-Audit)."""
    t = np.asarray(time_ps, dtype=float)
    slope = np.polyfit(t, np.asarray(total_energy, dtype=float), 1)[0]
    std = float(np.std(kinetic_energy))
    return float(abs(slope * (t[-1] - t[0])) / std) if std > 0 else float("inf")


def thermostat_stats(temperatures: np.ndarray, target: float, n_dof: int) -> dict[str, float]:
    """Mean / std of the temperature vs the target and the canonical std ``T sqrt(2/N_dof)``."""
    temps = np.asarray(temperatures, dtype=float)
    return {
        "target_K": float(target),
        "mean_K": float(np.mean(temps)),
        "std_K": float(np.std(temps)),
        "canonical_std_K": float(target * np.sqrt(2.0 / n_dof)),
        "mean_error_K": float(np.mean(temps) - target),
    }


def bonds(atoms: Atoms, mult: float = 1.2) -> np.ndarray:
    """Unique bonded pairs ``(i, j)``, i < j, by scaled covalent radii (minimum image)."""
    i, j = neighbor_list("ij", atoms, natural_cutoffs(atoms, mult=mult))
    keep = i < j
    return np.stack([i[keep], j[keep]], axis=1)


def bond_lengths(atoms: Atoms, pairs: np.ndarray) -> np.ndarray:
    """Lengths of the given pairs (minimum image for periodic cells)."""
    if len(pairs) == 0:
        return np.zeros(0)
    vec = atoms.positions[pairs[:, 1]] - atoms.positions[pairs[:, 0]]
    if atoms.pbc.any():
        from ase.geometry import find_mic

        return find_mic(vec, atoms.cell, atoms.pbc)[1]
    return np.linalg.norm(vec, axis=1)


def n_fragments(atoms: Atoms, mult: float = 1.2, slack: float = BOND_DEVIATION_LIMIT) -> int:
    """Connected components of the bond graph, with ``slack`` (A) added to every bond cutoff.

    The slack matches the bond-deviation limit: a C-H bond vibrating to 1.3 A at 600 K is not a
    fragmentation, an H atom 0.5 A beyond bonding distance is.
    """
    i, j = neighbor_list("ij", atoms, [c + slack / 2 for c in natural_cutoffs(atoms, mult=mult)])
    p = np.stack([i[i < j], j[i < j]], axis=1)
    n = len(atoms)
    graph = csr_matrix((np.ones(len(p)), (p[:, 0], p[:, 1])), shape=(n, n))
    return int(connected_components(graph, directed=False)[0])


def molecule_index(atoms: Atoms, mult: float = 1.2) -> np.ndarray:
    """Molecule of every atom: connected components of the bond graph (:func:`bonds`)."""
    pairs = bonds(atoms, mult)
    n = len(atoms)
    graph = csr_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def net_forces(forces: np.ndarray, mol: np.ndarray) -> np.ndarray:
    """``(M, 3)``: the summed force on each molecule (``mol`` from :func:`molecule_index`)."""
    net = np.zeros((int(mol.max()) + 1, 3))
    np.add.at(net, mol, forces)
    return net


def molecular_force_fidelity(
    frames: list[Atoms], pred: list[np.ndarray], ref: list[np.ndarray]
) -> dict[str, float] | None:
    """Fidelity of the net force on each molecule: the intermolecular force.

    In a molecular liquid the structure (RDF) is set by the forces between molecules, a small
    part of every atom's force (water at 300 K: 0.3 eV/A rms per molecule against ~1 eV/A per
    atom), so an atomic force R2 of 0.98 can hide a net-force R2 of 0.8. ``None`` when no
    frame holds two molecules (an isolated molecule's net force is zero for both models).
    """
    nets_pred, nets_ref = [], []
    for frame, p, r in zip(frames, pred, ref):
        mol = molecule_index(frame)
        k = int(mol.max()) + 1
        if k < 2:
            continue
        nets_pred.append(net_forces(p, mol))
        nets_ref.append(net_forces(r, mol))
    if not nets_ref:
        return None
    net_pred, net_ref = np.concatenate(nets_pred), np.concatenate(nets_ref)
    m = force_metrics(net_pred, net_ref)
    return {
        "molecular_net_force_r2": m["force_r2"],
        "molecular_net_force_rmse": m["force_rmse"],
        "teacher_molecular_net_force_rms": float(np.sqrt(np.mean(net_ref**2))),
        "molecules": len(net_ref),
    }


class StabilityMonitor:
    """Fu et al. 2023 stability: bond deviation > 0.5 A or fragmentation; NaN / explosion."""

    def __init__(self, start: Atoms, max_energy_change_ev_per_atom: float = 1.0) -> None:
        self.pairs = bonds(start)
        self.reference = bond_lengths(start, self.pairs)
        self.fragments = n_fragments(start) if not start.pbc.any() else 0
        self.limit = max_energy_change_ev_per_atom
        self.e0: float | None = None

    def check(self, atoms: Atoms, total_energy: float) -> str | None:
        """Reason the run is unstable, or ``None``."""
        if not np.isfinite(atoms.positions).all() or not np.isfinite(total_energy):
            return "non-finite positions or energy"
        if self.e0 is None:
            self.e0 = total_energy
        if abs(total_energy - self.e0) / len(atoms) > self.limit:
            return f"total energy changed by more than {self.limit} eV/atom (exploding)"
        if len(self.pairs):
            dev = np.abs(bond_lengths(atoms, self.pairs) - self.reference)
            k = int(np.argmax(dev))
            if dev[k] > BOND_DEVIATION_LIMIT:
                a, b = self.pairs[k]
                return f"bond {a}-{b} deviates by {dev[k]:.2f} A (> {BOND_DEVIATION_LIMIT} A)"
        # An isolated molecule that splits into more pieces has fragmented. In a periodic
        # liquid the bonded pieces of the start (molecules) may only break by a bond
        # deviation (above): counting fragments with the slack of a hot bond would read every
        # hydrogen bond that forms or breaks as fragmentation.
        if not atoms.pbc.any() and n_fragments(atoms) > self.fragments:
            return "the structure fragmented"
        return None


def distance_histogram(
    frames: list[Atoms], r_max: float = 6.0, bins: int = 120
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised distribution of all intramolecular distances (molecules in vacuum)."""
    edges = np.linspace(0, r_max, bins + 1)
    hist = np.zeros(bins)
    for atoms in frames:
        d = atoms.get_all_distances()[np.triu_indices(len(atoms), 1)]
        hist += np.histogram(d, edges)[0]
    centers = 0.5 * (edges[1:] + edges[:-1])
    total = hist.sum() * (edges[1] - edges[0])
    return centers, hist / total if total > 0 else hist


def rdf(
    frames: list[Atoms],
    r_max: float = 6.0,
    bins: int = 120,
    pair: tuple[int, int] | None = None,
    intermolecular: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Radial distribution function g(r) of periodic frames with MDAnalysis ``InterRDF``.

    Args:
        frames: periodic structures with the same atoms.
        r_max: largest distance (capped at half the shortest cell length).
        bins: histogram bins.
        pair: atomic numbers ``(a, b)`` for the partial g_ab(r); ``None`` for all atoms.
        intermolecular: leave out pairs within one molecule (the liquid's structure without
            its bond peaks); needs identical molecules stored one after another (water: OHH).
    """
    import MDAnalysis as mda
    from MDAnalysis.analysis.rdf import InterRDF
    from MDAnalysis.coordinates.memory import MemoryReader

    n = len(frames[0])
    u = mda.Universe.empty(n, trajectory=False)
    coords = np.stack([f.positions for f in frames]).astype(np.float32)
    dims = np.array([f.cell.cellpar() for f in frames], dtype=np.float32)
    u.load_new(coords, format=MemoryReader, dimensions=dims)
    r_max = min(r_max, 0.5 * min(min(f.cell.lengths()) for f in frames) - 1e-6)
    numbers = frames[0].numbers
    first = u.atoms if pair is None else u.atoms[np.flatnonzero(numbers == pair[0])]
    second = u.atoms if pair is None else u.atoms[np.flatnonzero(numbers == pair[1])]
    # exclude self-pairs only when the two groups are the same atoms
    exclusion = (1, 1) if pair is None or pair[0] == pair[1] else None
    if intermolecular:
        exclusion = molecule_blocks(frames[0], pair)
    analysis = InterRDF(first, second, nbins=bins, range=(0.0, r_max), exclusion_block=exclusion)
    analysis.run()
    return np.asarray(analysis.results.bins), np.asarray(analysis.results.rdf)


def molecule_blocks(atoms: Atoms, pair: tuple[int, int] | None) -> tuple[int, int]:
    """MDAnalysis ``exclusion_block`` that leaves out the pairs within each molecule.

    Raises:
        ValueError: molecules that are not identical and stored one after another.
    """
    mol = molecule_index(atoms)
    size = int(np.sum(mol == 0))
    blocks = np.arange(len(atoms)) // size
    first = atoms.numbers[:size]
    if (
        len(atoms) % size
        or np.any(mol != blocks)
        or np.any(atoms.numbers.reshape(-1, size) != first)
    ):
        raise ValueError(
            "An intermolecular RDF needs identical molecules stored one after another (water: "
            "O H H, O H H, ...); reorder the atoms or compare total RDFs."
        )
    if pair is None:
        return size, size
    return int(np.sum(first == pair[0])), int(np.sum(first == pair[1]))


def h_error(x: np.ndarray, reference: np.ndarray, other: np.ndarray) -> float:
    """Relative integrated difference ``int |g1 - g2| dr / int g_ref dr`` of two distributions."""
    dx = float(x[1] - x[0]) if len(x) > 1 else 1.0
    denom = float(np.sum(np.abs(reference)) * dx)
    return float(np.sum(np.abs(reference - other)) * dx / denom) if denom > 0 else float("nan")


def windowed_h(
    reference: list[Atoms], frames: list[Atoms], curve
) -> dict[str, float | list[float]]:
    """Structure error h of ``frames`` against ``reference`` on windows of equal length.

    A 20 ps student run and a 1 ps teacher run sample g(r) with different noise: comparing the
    whole student run with the short teacher run would credit the student with the lower
    noise of its longer average. Each window of ``len(reference)`` consecutive frames is
    compared with the reference, and consecutive windows with each other (the noise floor of
    h at that length).

    Args:
        reference: the teacher's frames.
        frames: the student's frames.
        curve: ``frames -> (x, y)`` (an RDF or distance distribution).
    """
    n = len(reference)
    x, ref = curve(reference)
    windows = [frames[k : k + n] for k in range(0, len(frames) - n + 1, n)] or [frames]
    ys = [curve(w)[1] for w in windows]
    per_window = [h_error(x, ref, y) for y in ys]
    noise = [h_error(x, a, b) for a, b in zip(ys, ys[1:])]
    return {
        "h_mean": float(np.mean(per_window)),
        "h_std": float(np.std(per_window)),
        "h_windows": [float(v) for v in per_window],
        "window_frames": n,
        "student_window_to_window_h": float(np.mean(noise)) if noise else None,
    }
