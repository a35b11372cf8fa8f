"""Fit a pair-force table to a student's intermolecular force error, keeping its weights.

``python -m training.pair_correction STUDENT OUT --fit DATASET[:SPLIT] [...] --pair O O``
fits :class:`~ase_distill.model.PairTable` coefficients of one species pair so that the net
force the table puts on each molecule matches the teacher-minus-student net force on those
frames (ridge least squares; the force is linear in the coefficients), and writes ``OUT.pt`` +
``OUT.json``: the same student plus the table, its card's metrics recomputed on the student's
own dataset as training does (``--dataset``, default the card's), and ``OUT_fit.json`` /
``OUT_fit.png`` with the fitted ``g(r)`` and the residual variance before and after, on the fit
frames and on ``--check`` frames never fitted.

Why: in a molecular liquid the structure follows the net force on each molecule, a small part
of every atom's force that a force loss hardly weights. Measured on SevenNet-0's water frames,
a third of water-tiny's net-force error is a function of the O-O distance alone, which its
message passing never learned. The table is a short-range pair term, so it is applied only to
pairs of different molecules: a pair of the chosen species inside one molecule is an error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.data import atomic_numbers
from ase.neighborlist import neighbor_list

from ase_distill.checkpoint import atomic_write_json, checkpoint_paths
from ase_distill.model import PairTable, StudentConfig, StudentModel
from training.frame_fidelity import parse_part
from training.generate import FORCES_KEY, STRESS_KEY, read_dataset


class PairFitError(ValueError):
    """Frames or settings a pair table cannot be fitted on."""


VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))  # ASE's stress order


def residuals(model: StudentModel, frames: list[Atoms]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Teacher-minus-student residuals of each frame: net forces and virial.

    Returns, per frame, the net force on each molecule ``(3 M,)`` (eV/A) and the virial
    ``(6,)`` (stress times volume, eV; empty for frames without a teacher stress).
    """
    from ase_distill.calculator import DistilledCalculator
    from md_validation.metrics import molecule_index, net_forces

    calc = DistilledCalculator(model, dtype=torch.float64, compile=False)
    out = []
    for frame in frames:
        atoms = frame.copy()
        atoms.calc = calc
        residual = frame.arrays[FORCES_KEY] - atoms.get_forces()
        net = net_forces(residual, molecule_index(frame))
        virial = np.zeros(0)
        if STRESS_KEY in frame.info and frame.pbc.all():
            stress = np.asarray(frame.info[STRESS_KEY], float) - atoms.get_stress(voigt=True)
            virial = stress * frame.get_volume()
        out.append((net.ravel(), virial))
    return out


def design(table: PairTable, frame: Atoms, pair: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """What each coefficient alone does: net forces and virial.

    Returns the net force on each molecule ``(3 M, knots)`` and the virial ``(6, knots)``
    (the table's stress times the volume, eV).

    Raises:
        PairFitError: two atoms of the pair within one molecule and the cutoff.
    """
    from md_validation.metrics import molecule_index

    mol = molecule_index(frame)
    cutoff = table.start + table.spacing * table.segments
    i, j, d = neighbor_list("ijD", frame, cutoff)
    z = frame.numbers
    keep = ((z[i] == pair[0]) & (z[j] == pair[1])) | ((z[i] == pair[1]) & (z[j] == pair[0]))
    i, j, d = i[keep], j[keep], d[keep]
    if np.any(mol[i] == mol[j]):
        raise PairFitError(
            f"Atoms {pair} lie within one molecule and {cutoff:.2f} A: the table would change "
            "forces inside molecules that the net-force fit cannot see. Choose another pair."
        )
    r = np.linalg.norm(d, axis=1)
    unit = d / r[:, None]
    basis = table.force_basis(torch.as_tensor(r, dtype=torch.float64)).numpy()
    rows = np.zeros((mol.max() + 1, 3, table.knots))
    np.add.at(rows, mol[i], unit[:, :, None] * basis[:, None, :])
    # dE/d(strain) = sum over pairs of g r u u (each pair is listed twice: half)
    outer = np.stack([unit[:, a] * unit[:, b] for a, b in VOIGT], 1) * r[:, None]
    virial = 0.5 * outer.T @ basis
    return rows.reshape(-1, table.knots), virial


def fit_table(
    model: StudentModel,
    frames: list[Atoms],
    pair: tuple[int, int],
    start: float,
    knots: int,
    ridge: float,
    stress_weight: float = 0.0,
) -> tuple[np.ndarray, dict[str, float]]:
    """Coefficients ``(knots,)`` and the mean squares of the residuals before and after.

    The net forces (eV/A) are fitted together with ``stress_weight`` times the virials (eV) of
    frames with a teacher stress: net forces of a nearly uniform liquid hardly constrain a
    table that pulls every pair alike, which changes the pressure; the stress does.
    """
    table = PairTable(1, knots, start, model.cutoff)
    parts = [design(table, f, pair) for f in frames]
    res = residuals(model, frames)
    x_force = np.vstack([p[0] for p in parts])
    y_force = np.concatenate([r[0] for r in res])
    stressed = [k for k, r in enumerate(res) if r[1].size]
    x_virial = np.vstack([parts[k][1] for k in stressed] or [np.zeros((0, knots))])
    y_virial = np.concatenate([res[k][1] for k in stressed] or [np.zeros(0)])
    x = np.vstack([x_force, stress_weight * x_virial])
    y = np.concatenate([y_force, stress_weight * y_virial])
    coefficients = np.linalg.solve(x.T @ x + ridge * np.eye(knots), x.T @ y)
    summary = {
        "net_force_before": float(np.mean(y_force**2)),
        "net_force_after": float(np.mean((y_force - x_force @ coefficients) ** 2)),
    }
    if stressed:
        summary["virial_before"] = float(np.mean(y_virial**2))
        summary["virial_after"] = float(np.mean((y_virial - x_virial @ coefficients) ** 2))
    return coefficients, summary


def with_tables(
    model: StudentModel, start: float, tables: dict[tuple[int, int], np.ndarray]
) -> StudentModel:
    """A float64 copy of ``model`` with ``tables[pair]`` in its pair table.

    Each species pair given gets its coefficients in both orders; the others stay zero. All
    tables have one length, the knots.
    """
    knots = len(next(iter(tables.values())))
    config = StudentConfig.from_dict(
        {**model.config.to_dict(), "pair_knots": knots, "pair_start": start}
    )
    out = StudentModel(config).to(torch.float64)
    state = {k: v for k, v in model.state_dict().items() if k != "pair.table"}
    table = out.pair.table.clone()
    for pair, coefficients in tables.items():
        a, b = (config.species.index(z) for z in pair)
        table[a, b] = table[b, a] = torch.as_tensor(coefficients, dtype=torch.float64)
    out.load_state_dict({**state, "pair.table": table}, strict=True)
    return out.eval()


def with_table(
    model: StudentModel, pair: tuple[int, int], start: float, coefficients: np.ndarray
) -> StudentModel:
    """A copy of ``model`` whose pair table holds ``coefficients`` for ``pair`` (both orders)."""
    return with_tables(model, start, {pair: coefficients})


def residual_check(model: StudentModel, corrected: StudentModel, frames: list[Atoms]) -> dict:
    """Mean squares of the net-force (eV^2/A^2) and virial (eV^2) residuals of both models."""
    out: dict[str, Any] = {"frames": len(frames)}
    for label, m in (("before", model), ("after", corrected)):
        res = residuals(m, frames)
        out[f"net_force_{label}"] = float(np.mean(np.concatenate([r[0] for r in res]) ** 2))
        virials = [r[1] for r in res if r[1].size]
        if virials:
            out[f"virial_{label}"] = float(np.mean(np.concatenate(virials) ** 2))
    return out


def read_parts(parts: list[str]) -> list[Atoms]:
    """Frames of ``DATASET[:SPLIT]`` parts (the name before ``=`` is optional)."""
    frames: list[Atoms] = []
    for part in parts:
        _, dataset, split = parse_part(part if "=" in part else f"part={part}")
        got = [f for f in read_dataset(dataset) if split is None or f.info.get("split") == split]
        if not got:
            raise PairFitError(f"{part} holds no frames (split {split!r}).")
        frames += got
    return frames


def _plot(table: PairTable, coefficients: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = torch.linspace(table.start, table.start + table.spacing * table.segments, 400)
    g = table.force_basis(r.double()).numpy() @ coefficients
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(r.numpy(), g * 1000)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set(xlabel="r (A)", ylabel="g(r) = dV/dr (meV/A)", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """CLI (see the module docstring)."""
    from ase_distill.registry import resolve_student
    from training.train import save_with_metrics, split_frames

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("student", help="student name or checkpoint")
    p.add_argument("out", help="output checkpoint stem (OUT.pt, OUT.json, OUT_fit.json/png)")
    p.add_argument("--fit", nargs="+", required=True, help="DATASET[:SPLIT] frames to fit on")
    p.add_argument("--check", nargs="*", default=[], help="DATASET[:SPLIT] frames to check on")
    p.add_argument("--pair", nargs=2, default=["O", "O"], help="the species pair (symbols)")
    p.add_argument("--start", type=float, default=2.2, help="no force below (A)")
    p.add_argument("--knots", type=int, default=25, help="B-spline coefficients")
    p.add_argument("--ridge", type=float, default=1.0, help="ridge weight (eV^2/A^2)")
    p.add_argument("--stress-weight", type=float, default=0.0, help="weight of virials (1/A)")
    p.add_argument("--dataset", help="the card's metrics on (default: the card's dataset)")
    args = p.parse_args(argv)
    out = Path(args.out)
    if checkpoint_paths(out)[0].exists():
        raise PairFitError(f"{out}.pt exists; choose another OUT (results are not overwritten).")
    model, card = resolve_student(args.student)
    model = model.double().eval()
    pair = tuple(atomic_numbers[s] for s in args.pair)
    coefficients, variance = fit_table(
        model, read_parts(args.fit), pair, args.start, args.knots, args.ridge, args.stress_weight
    )
    corrected = with_table(model, pair, args.start, coefficients)
    checks = {part: residual_check(model, corrected, read_parts([part])) for part in args.check}
    dataset = args.dataset or card["training_data"]["dataset"]
    by_split, _ = split_frames(read_dataset(dataset), 0.0)
    fit = {
        "student": args.student,
        "pair": list(args.pair),
        "start_A": args.start,
        "knots": args.knots,
        "ridge": args.ridge,
        "stress_weight": args.stress_weight,
        "fit_parts": args.fit,
        "mean_square_fit": variance,
        "mean_square_check": checks,
        "coefficients": coefficients.tolist(),
        "units": {"coefficients": "eV/A", "net_force": "eV^2/A^2", "virial": "eV^2"},
    }
    save_with_metrics(corrected, card, out, by_split, "pair_correction", fit)
    atomic_write_json(f"{out}_fit.json", fit)
    _plot(corrected.pair, coefficients, Path(f"{out}_fit.png"), f"{args.pair[0]}-{args.pair[1]}")
    for name, row in {"fit": variance, **checks}.items():
        line = f"net force {row['net_force_before']:.5f} -> {row['net_force_after']:.5f} eV^2/A^2"
        if "virial_before" in row:
            line += f", virial {row['virial_before']:.4f} -> {row['virial_after']:.4f} eV^2"
        print(f"{name}: mean square {line}")
    print(f"wrote {out}.pt / .json, {out}_fit.json / .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
