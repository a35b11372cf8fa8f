"""Pair tables fitted to the liquid's structure and to the teacher's energies together.

A Boltzmann-inversion table (:mod:`training.water_ibi`) gives water-tiny the teacher's 300 K
structure (RDF h 0.018-0.021 against 0.043), but it adds the liquid's pair energy, which depends
on each box's density and structure, and the held-out energy MAE goes from 0.9 to 4-6 meV/atom.
Both the table's force and its energy on a frame are linear in its coefficients, so one ridge
least-squares problem can ask for the two at once:

    J(c) = S(c) / S(0) + lambda_E E(c) / (1 meV/atom)^2 + lambda_F F(c) / (0.01 eV/A)^2

* ``S``: the misfit of the table's pair force to ``scale`` times the Boltzmann-inversion force
  of a :mod:`training.water_ibi` record, per species pair, weighted by ``r^2 g_teacher(r)`` (how
  many of the liquid's pairs feel it); below each pair's ``min_r`` the target force is zero and
  held there with the pair's largest weight, so bonds and the intramolecular H-H distance feel
  nothing;
* ``E``: the mean square per-atom energy residual (teacher minus student minus table and
  per-element references) on a seeded sample of training frames, or with
  ``--keep-energies`` the table's own energy change there (the student's energies kept);
* ``F``: the same for the force components (``--force-weight``, default 0).

For each ``scale`` and ``lambda_E`` the scan reports the share of the target force kept
(``<g, target>_w / <target, target>_w``), the structure misfit and the energy MAE and force
RMSE on training, validation and held-out frames. Picked, per scale: the least misfit whose
validation energy MAE and force RMSE stay within ``--energy-tolerance`` and
``--force-tolerance`` of the student's own; it is written as a real student, card metrics
recomputed.

``python -m training.water_joint STUDENT IBI_JSON OUT [--scales 0.5 1] [--lambdas ...]``
writes ``OUT.json`` / ``OUT.png`` (the scan), ``OUT_tables.png`` (the picked forces) and
``OUT_sNNN.pt`` / ``.json`` (the picks; NNN is the scale x 100).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms

from ase_distill.checkpoint import atomic_write_json, checkpoint_paths
from ase_distill.model import PairTable, StudentModel
from training.pair_energy import LinearFit, corrected_model, species_pairs
from training.water_ibi import force_target

MEV = 1e-3  # eV: the energy term's unit
FORCE_UNIT = 0.01  # eV/A: the force term's unit


class JointFitError(ValueError):
    """Settings or records the joint fit cannot use."""


def structure_terms(
    table: PairTable, record: dict[str, Any], species: tuple[int, ...], scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Normal equations of ``S(c) / S(0)``: ``SS`` and ``Sb`` over all parameters.

    The parameters are each species pair's table, then the references (zero rows here).

    Raises:
        JointFitError: the record lacks a species pair of the student.
    """
    knots = table.knots
    n = len(species_pairs(species)) * knots + len(species)
    ss, sb, norm = np.zeros((n, n)), np.zeros(n), 0.0
    for p, (a, b) in enumerate(species_pairs(species)):
        row = record.get(f"{a}-{b}")
        if row is None:
            raise JointFitError(f"the record has no {a}-{b} pair; was it written by water_ibi?")
        r, dv, g = (np.asarray(row[k]) for k in ("r", "dv_eV", "g_teacher"))
        grid, target = force_target(table, r, scale * dv, row["min_r_A"])
        weight = grid**2 * np.interp(grid, r, g, right=1.0)
        weight /= weight.sum()
        weight[grid < row["min_r_A"]] = weight.max()  # no force on bonds: held at zero
        x = table.force_basis(torch.as_tensor(grid, dtype=torch.float64)).numpy()
        block = slice(p * knots, (p + 1) * knots)
        ss[block, block] = x.T @ (weight[:, None] * x)
        sb[block] = x.T @ (weight * target)
        norm += float(target @ (weight * target))
    if norm <= 0:
        raise JointFitError("the record's Boltzmann-inversion force is zero everywhere.")
    return ss / norm, sb / norm


def solve(
    structure: tuple[np.ndarray, np.ndarray],
    equations: tuple[np.ndarray, ...],
    lambda_e: float,
    lambda_f: float,
    ridge: float,
) -> np.ndarray:
    """The minimiser of ``J`` (module docstring) plus ``ridge`` x the mean diagonal x ``|c|^2``.

    The ridge is relative: at large ``lambda_E`` the energy rows (collinear references of
    water's fixed stoichiometry) dominate, and an absolute ridge would be lost in rounding.
    """
    ss, sb = structure
    ee, eb, ff, fb = equations
    a = ss + lambda_e * ee / MEV**2 + lambda_f * ff / FORCE_UNIT**2
    b = sb + lambda_e * eb / MEV**2 + lambda_f * fb / FORCE_UNIT**2
    return np.linalg.solve(a + ridge * np.mean(np.diag(a)) * np.eye(len(b)), b)


def kept_share(structure: tuple[np.ndarray, np.ndarray], w: np.ndarray) -> dict[str, float]:
    """Share of the target force kept and the structure misfit ``S(c) / S(0)``."""
    ss, sb = structure
    return {"kept": float(w @ sb), "misfit": float(1.0 - 2.0 * w @ sb + w @ ss @ w)}


def scan(
    structure: tuple[np.ndarray, np.ndarray],
    fits: dict[str, LinearFit],
    lambdas: list[float],
    lambda_f: float,
    ridge: float,
    keep_energies: bool = False,
) -> list[dict[str, Any]]:
    """One row per ``lambda_E``: the kept share, misfit and each frame set's scores.

    ``keep_energies``: the energy term asks the table (with the references) to leave the
    student's energies unchanged (a zero right-hand side) rather than to fit its training
    residuals. Measured on water-tiny: it keeps the held-out liquid's energies (0.96 against
    1.09 meV/atom) but, picked the same way, keeps less of the target force, and that table
    over-ordered the liquid (``docs/water-experiments.md``).
    """
    ee, eb, ff, fb = fits["train"].normal_equations()
    equations = (ee, np.zeros_like(eb) if keep_energies else eb, ff, fb)
    rows = []
    for lam in lambdas:
        w = solve(structure, equations, lam, lambda_f, ridge)
        row: dict[str, Any] = {"lambda_E": lam, **kept_share(structure, w)}
        for name, fit in fits.items():
            row[name] = fit.scores(w)
        rows.append({**row, "w": w})
    return rows


def pick(
    rows: list[dict[str, Any]], own: dict[str, float], energy_tol: float, force_tol: float
) -> dict | None:
    """The row of least structure misfit whose validation scores stay near the student's own.

    Near: energy MAE within ``energy_tol`` and force RMSE within ``force_tol`` (relative).
    ``None`` when no row is.
    """
    energy = own["energy_mae_mev_per_atom"] * (1 + energy_tol)
    force = own["force_rmse"] * (1 + force_tol)
    fine = [
        r
        for r in rows
        if r["val"]["energy_mae_mev_per_atom"] <= energy and r["val"]["force_rmse"] <= force
    ]
    return min(fine, key=lambda r: r["misfit"]) if fine else None


def frame_sets(dataset: str, n_train: int, seed: int) -> dict[str, list[Atoms]]:
    """A seeded sample of training frames, the validation split and the held-out boxes."""
    from training.generate import read_dataset
    from training.train import split_frames

    by_split, _ = split_frames(read_dataset(dataset), 0.0)
    train = by_split.get("train", [])
    if not train:
        raise JointFitError(f"{dataset} has no training frames.")
    take = np.random.default_rng(seed).choice(len(train), min(n_train, len(train)), replace=False)
    return {
        "train": [train[k] for k in sorted(take)],
        "val": by_split.get("validation", []),
        "test_molecule": by_split.get("test_molecule", []),
    }


def _save(fig: Any, legend_axes: Any, path: Path) -> None:
    """Legend, layout, write the PNG and free the figure."""
    import matplotlib.pyplot as plt

    legend_axes.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot(results: dict[str, list[dict[str, Any]]], own: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for scale, rows in results.items():
        ax.plot(
            [r["misfit"] for r in rows],
            [r["val"]["energy_mae_mev_per_atom"] for r in rows],
            "o-",
            label=f"target: {float(scale):g} x the record's force",
        )
    ax.axhline(own["val"]["energy_mae_mev_per_atom"], color="0.5", ls="--", label="student")
    ax.set(xlabel="structure misfit S(c) / S(0) (lambda_E grows to the right)", xscale="log")
    ax.set(ylabel="validation energy MAE (meV/atom)", yscale="log")
    _save(fig, ax, path)


def _plot_tables(
    table: PairTable,
    record: dict[str, Any],
    species: tuple[int, ...],
    picked: dict[float, np.ndarray],
    path: Path,
) -> None:
    """Each picked table's pair force against its Boltzmann-inversion target, pair by pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = species_pairs(species)
    fig, axes = plt.subplots(1, len(pairs), figsize=(12, 3.6))
    for scale, w in picked.items():
        for p, (a, b) in enumerate(pairs):
            row = record[f"{a}-{b}"]
            dv = scale * np.asarray(row["dv_eV"])
            grid, target = force_target(table, np.asarray(row["r"]), dv, row["min_r_A"])
            x = table.force_basis(torch.as_tensor(grid, dtype=torch.float64)).numpy()
            fitted = x @ w[p * table.knots : (p + 1) * table.knots]
            line = axes[p].plot(grid, 1000 * target, ls=":", lw=1)[0]
            axes[p].plot(grid, 1000 * fitted, color=line.get_color(), label=f"scale {scale:g}")
            axes[p].set(title=f"{a}-{b} (Z): fitted (solid), target (dotted)", xlabel="r (A)")
    axes[0].set(ylabel="pair force g = dV/dr (meV/A)")
    _save(fig, axes[0], path)


def save_pick(
    model: StudentModel,
    card: dict[str, Any],
    table: PairTable,
    row: dict[str, Any],
    out: Path,
    fit: dict[str, Any],
) -> Path:
    """The picked table as a real student, card metrics recomputed on ``fit["dataset"]``."""
    from training.generate import read_dataset
    from training.train import save_with_metrics, split_frames

    fixed = corrected_model(model, table, row["w"], table.knots)
    by_split, _ = split_frames(read_dataset(fit["dataset"]), 0.0)
    picked = {k: v for k, v in row.items() if k != "w"}
    save_with_metrics(fixed, card, out, by_split, "joint_pair_fit", {**fit, "picked": picked})
    return checkpoint_paths(out)[1]


def main(argv: list[str] | None = None) -> int:
    """CLI (see the module docstring)."""
    from ase_distill.registry import resolve_student

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("student", help="student name or checkpoint (without a pair table)")
    p.add_argument("ibi", help="a water_ibi record (OUT_ibi.json): the target force")
    p.add_argument("out", help="output stem: OUT.json, OUT.png, OUT_sNNN.pt/json (scale x 100)")
    p.add_argument("--scales", type=float, nargs="+", default=[1.0], help="target x record")
    p.add_argument("--lambdas", type=float, nargs="+", default=list(np.logspace(-3, 3, 25)))
    p.add_argument("--force-weight", type=float, default=0.0, help="lambda_F")
    p.add_argument("--ridge", type=float, default=1e-9, help="relative to the mean diagonal")
    p.add_argument("--train-frames", type=int, default=600, help="training frames sampled")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--energy-tolerance", type=float, default=0.05, help="validation MAE slack")
    p.add_argument("--force-tolerance", type=float, default=0.05, help="validation RMSE slack")
    p.add_argument(
        "--keep-energies", action="store_true", help="energy term: no change, not the residual"
    )
    p.add_argument("--dataset", help="frames to fit and score on (default: the card's dataset)")
    args = p.parse_args(argv)
    out = Path(args.out)
    torch.set_num_threads(1)
    try:
        if Path(f"{out}.json").exists():
            raise JointFitError(f"{out}.json exists; choose another OUT (nothing is overwritten).")
        record = json.loads(Path(args.ibi).read_text())
        model, card = resolve_student(args.student)
        model = model.double().eval()
        if model.config.pair_knots:
            raise JointFitError("the student already has a pair table; start from one without.")
        table = PairTable(1, record["knots"], record["start_A"], model.cutoff)
        species = tuple(model.species)
        args.dataset = args.dataset or card["training_data"]["dataset"]
        structures = {s: structure_terms(table, record["pairs"], species, s) for s in args.scales}
        sets = frame_sets(args.dataset, args.train_frames, args.seed)
    except (ValueError, OSError, KeyError) as exc:
        print(f"water_joint: error: {exc}", file=sys.stderr)
        return 2
    fits = {name: LinearFit(model, table, frames) for name, frames in sets.items()}
    zero = np.zeros(len(species_pairs(species)) * table.knots + len(species))
    own = {name: fit.scores(zero) for name, fit in fits.items()}
    settings = {k: v for k, v in vars(args).items()}
    results, picks, picked_w = {}, {}, {}
    for scale in args.scales:
        rows = scan(
            structures[scale], fits, args.lambdas, args.force_weight, args.ridge, args.keep_energies
        )
        results[str(scale)] = rows
        chosen = pick(rows, own["val"], args.energy_tolerance, args.force_tolerance)
        if chosen is not None:
            fit = {"scale": scale, **settings}
            stem = Path(f"{out}_s{round(scale * 100):03d}")
            path = save_pick(model, card, table, chosen, stem, fit)
            picks[str(scale)] = {"lambda_E": chosen["lambda_E"], "saved": str(path)}
            picked_w[scale] = chosen["w"]
        for r in rows:
            flag = "*" if chosen is r else " "
            print(f"{flag} scale {scale:g} lambda_E {r['lambda_E']:.3g}: kept {r['kept']:.3f}, "
                  f"misfit {r['misfit']:.3f}, energy MAE train/val/test "
                  + "/".join(f"{r[s]['energy_mae_mev_per_atom']:.2f}" for s in fits)
                  + f" meV/atom, val force RMSE {r['val']['force_rmse']:.4f}")  # fmt: skip
    clean = {s: [{k: v for k, v in r.items() if k != "w"} for r in rows]
             for s, rows in results.items()}  # fmt: skip
    record_out = {"settings": settings, "student": own, "scan": clean, "picked": picks}
    atomic_write_json(Path(f"{out}.json"), record_out)
    _plot(clean, own, Path(f"{out}.png"))
    if picked_w:
        _plot_tables(table, record["pairs"], species, picked_w, Path(f"{out}_tables.png"))
    print(f"student: val energy MAE {own['val']['energy_mae_mev_per_atom']:.2f} meV/atom; "
          f"picked {picks or 'none'}; wrote {out}.json / .png")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
