"""Energy ablation: how much of a student's held-out energy error a pair-energy table removes.

``python -m training.pair_energy DATASET OUT.json STUDENT [STUDENT ...]`` keeps every weight of
each student and fits, by ridge least squares on the residuals (teacher minus student) of a
seeded sample of training frames:

* ``reference``: the per-element reference energies alone (no force changes);
* ``pairs``: those plus a :class:`~ase_distill.model.PairTable` of every species pair, fitted to
  the per-atom energy and, with weight ``w``, the force residuals. ``w`` and the ridge are
  picked on the validation split: the lowest energy MAE whose force RMSE stays within
  ``--force-tolerance`` of the student's own.

Each corrected student is then built as a real model (the table in its state_dict) and scored
on the held-out molecules' teacher MD frames by :func:`training.heldout.evaluate_student`'s
path. ``OUT.json`` and ``OUT.md`` hold the rows. Why: issue 11's energy error is mostly a
constant offset per held-out molecule; this asks whether a short-range pair term, which the
message passing could have learned, accounts for it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list
from tqdm import tqdm

from ase_distill.checkpoint import atomic_write_json
from ase_distill.model import PairTable, StudentModel
from training.generate import ENERGY_KEY, FORCES_KEY, read_dataset
from training.heldout import HELDOUT_SPLIT, heldout_md, summary_row


class PairEnergyError(ValueError):
    """Settings or frames the ablation cannot use."""


def species_pairs(species: tuple[int, ...]) -> list[tuple[int, int]]:
    """Every unordered pair of species, in the table's order."""
    return [(a, b) for k, a in enumerate(species) for b in species[k:]]


def frame_design(
    table: PairTable, species: tuple[int, ...], frame: Atoms
) -> tuple[np.ndarray, np.ndarray]:
    """What each parameter alone adds: energy ``(P,)`` and forces ``(3 N, P)``.

    Parameters: each species pair's ``knots`` coefficients, then one reference energy per
    species (which moves no force).
    """
    pairs = species_pairs(species)
    cutoff = table.start + table.spacing * table.segments
    i, j, d = neighbor_list("ijD", frame, cutoff)
    r = np.linalg.norm(d, axis=1)
    z = frame.numbers
    pair_id = np.full(len(i), -1)
    for p, (a, b) in enumerate(pairs):
        pair_id[((z[i] == a) & (z[j] == b)) | ((z[i] == b) & (z[j] == a))] = p
    if np.any(pair_id < 0):
        raise PairEnergyError(f"Frame with elements outside {species}.")
    distance = torch.as_tensor(r, dtype=torch.float64)
    energy = np.zeros((len(pairs), table.knots))
    np.add.at(energy, pair_id, 0.5 * table.energy_basis(distance).numpy())  # pairs listed twice
    forces = np.zeros((len(frame), 3, len(pairs), table.knots))
    unit = d / r[:, None]  # the force on i is g(r) along i -> j
    basis = table.force_basis(distance).numpy()
    np.add.at(forces, (i, slice(None), pair_id), unit[:, :, None] * basis[:, None, :])
    counts = np.array([np.sum(z == s) for s in species], float)
    forces = forces.reshape(3 * len(frame), -1)
    return np.concatenate([energy.ravel(), counts]), np.hstack(
        [forces, np.zeros((len(forces), len(species)))]
    )


def residuals(model: StudentModel, frames: list[Atoms]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Teacher-minus-student energies ``(F,)`` (eV) and forces (per frame ``(3 N,)``, eV/A)."""
    from training.train import predict, prepare

    pred = predict(model, prepare(frames, model.cutoff, model.species))
    ends = np.cumsum([0] + [len(f) for f in frames])
    energy = np.array([f.info[ENERGY_KEY] for f in frames]) - pred["energy"]
    forces = [
        (f.arrays[FORCES_KEY] - pred["forces"][ends[k] : ends[k + 1]]).ravel()
        for k, f in enumerate(frames)
    ]
    return energy, forces


class LinearFit:
    """Designs and residuals of one frame set, and what a parameter vector does to them."""

    def __init__(
        self,
        model: StudentModel,
        table: PairTable,
        frames: list[Atoms],
        designs: list[tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        species = tuple(model.species)
        if designs is None:  # they depend on the frames, species and table, not the weights
            designs = [frame_design(table, species, f) for f in tqdm(frames, "designs")]
        self.designs = designs
        self.energy, self.forces = residuals(model, frames)
        self.n_atoms = np.array([len(f) for f in frames], float)

    def normal_equations(self) -> tuple[np.ndarray, ...]:
        """Mean-square energy-per-atom and force terms: ``EE, Eb, FF, Fb``."""
        rows = np.array([e for e, _ in self.designs]) / self.n_atoms[:, None]
        ee = rows.T @ rows / len(rows)
        eb = rows.T @ (self.energy / self.n_atoms) / len(rows)
        n = sum(len(f) for f in self.forces)
        ff = sum(fr.T @ fr for _, fr in self.designs) / n
        fb = sum(fr.T @ y for (_, fr), y in zip(self.designs, self.forces, strict=True)) / n
        return ee, eb, ff, fb

    def scores(self, w: np.ndarray) -> dict[str, float]:
        """Energy MAE (meV/atom) and force RMSE (eV/A) after adding ``w``."""
        energy = self.energy - np.array([e @ w for e, _ in self.designs])
        force = np.concatenate([y - fr @ w for (_, fr), y in zip(self.designs, self.forces)])
        return {
            "energy_mae_mev_per_atom": float(np.mean(np.abs(energy / self.n_atoms)) * 1000),
            "force_rmse": float(np.sqrt(np.mean(force**2))),
        }


def solve(
    equations: tuple[np.ndarray, ...], columns: np.ndarray, force_weight: float, ridge: float
) -> np.ndarray:
    """Ridge solution over the parameters in ``columns`` (the rest stay 0)."""
    ee, eb, ff, fb = equations
    idx = np.flatnonzero(columns)
    a = (ee + force_weight * ff)[np.ix_(idx, idx)] + ridge * np.eye(len(idx))
    w = np.zeros(len(columns))
    w[idx] = np.linalg.solve(a, (eb + force_weight * fb)[idx])
    return w


def corrected_model(
    model: StudentModel, table: PairTable, w: np.ndarray, knots: int
) -> StudentModel:
    """``model`` plus the fitted pair table and reference shifts, as a real student."""
    from training.pair_correction import with_tables

    species = tuple(model.species)
    blocks = {pair: w[p * knots : (p + 1) * knots] for p, pair in enumerate(species_pairs(species))}
    out = with_tables(model, table.start, blocks)
    with torch.no_grad():
        out.readout.reference += torch.as_tensor(w[-len(species) :])
    return out


def pick_on_validation(
    equations: tuple[np.ndarray, ...], val: LinearFit, args: argparse.Namespace
) -> tuple[list[dict[str, float]], dict[str, float] | None, np.ndarray | None]:
    """The settings tried, the picked one and its solution.

    Every (force weight, ridge) is scored on validation. Picked: the lowest energy MAE whose
    force RMSE stays within ``args.force_tolerance`` of the student's own (``None``, ``None``
    when no setting does).
    """
    n_parameters = len(equations[1])
    limit = val.scores(np.zeros(n_parameters))["force_rmse"] * (1 + args.force_tolerance)
    tried, best, best_w = [], None, None
    for weight in args.force_weights:
        for ridge in args.ridges:
            w = solve(equations, np.ones(n_parameters, bool), weight, ridge)
            row = {"force_weight": weight, "ridge": ridge, **val.scores(w)}
            tried.append(row)
            energy = row["energy_mae_mev_per_atom"]
            if row["force_rmse"] <= limit and (
                best is None or energy < best["energy_mae_mev_per_atom"]
            ):
                best, best_w = row, w
    return tried, best, best_w


def ablate(
    student: str,
    by_split: dict[str, list[Atoms]],
    args: argparse.Namespace,
    designs: dict[tuple, list] | None = None,
) -> dict[str, Any]:
    """The rows of one student: as shipped, reference refit, pair table (picked on validation).

    ``designs`` keeps the frames' designs between students of one species set and cutoff.
    """
    from ase_distill.registry import resolve_student
    from training.train import evaluate_samples, prepare

    model, _ = resolve_student(student)
    model = model.double().eval()
    table = PairTable(1, args.knots, args.start, model.cutoff)
    designs = {} if designs is None else designs
    fits = {}
    for split in ("train", "val"):
        key = (split, tuple(model.species), model.cutoff)
        fits[split] = LinearFit(model, table, by_split[split], designs.get(key))
        designs[key] = fits[split].designs
    train, val = fits["train"], fits["val"]
    equations = train.normal_equations()
    only_reference = np.zeros(len(equations[1]), bool)
    only_reference[-len(model.species) :] = True
    candidates = {"reference": solve(equations, only_reference, 0.0, 1e-12)}
    tried, picked_row, picked = pick_on_validation(equations, val, args)
    if picked is not None:
        candidates["pairs"] = picked
    held = by_split[HELDOUT_SPLIT]
    samples = prepare(held, model.cutoff, model.species)
    groups = [f.info["seed"] for f in held]
    rows = {"student": summary_row(evaluate_samples(model, samples, groups))}
    for name, w in candidates.items():
        fixed = corrected_model(model, table, w, args.knots)
        rows[name] = summary_row(evaluate_samples(fixed, samples, groups))
    result = {
        "validation_before": val.scores(np.zeros(len(only_reference))),
        "validation_tried": tried,
        "picked": picked_row,
        "heldout": rows,
    }
    if args.save and picked is not None:
        result["saved"] = str(save_corrected(student, model, table, picked, args, result))
    return result


def save_corrected(
    student: str,
    model: StudentModel,
    table: PairTable,
    w: np.ndarray,
    args: argparse.Namespace,
    result: dict[str, Any],
) -> Path:
    """Write the pair-corrected student as ``SAVE/NAME-pairs.{pt,json}``, card metrics redone.

    The card's metrics are recomputed on the student's own dataset as training does, so that
    ``python -m training.ship`` can ship it; the fit is recorded under ``training``.
    """
    from ase_distill.checkpoint import checkpoint_paths
    from ase_distill.registry import resolve_student
    from training.train import save_with_metrics, split_frames

    _, card = resolve_student(student)
    fixed = corrected_model(model, table, w, args.knots)
    by_split, _ = split_frames(read_dataset(card["training_data"]["dataset"]), 0.0)
    record = {
        "from": student,
        "knots": args.knots,
        "start_A": args.start,
        "training_frames": args.train_frames,
        "seed": args.seed,
        "picked_on_validation": result["picked"],
    }
    out = Path(args.save) / f"{Path(student).stem}-pairs"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_with_metrics(fixed, card, out, by_split, "pair_energy", record)
    return checkpoint_paths(out)[1]


def frame_sets(dataset: str, n_train: int, seed: int, max_force: float) -> dict[str, list[Atoms]]:
    """A seeded sample of training frames, the validation split and the held-out MD frames."""
    frames = read_dataset(dataset)

    def split(name: str) -> list[Atoms]:
        return [
            f
            for f in frames
            if f.info.get("split") == name and np.abs(f.arrays[FORCES_KEY]).max() <= max_force
        ]

    train = split("train")
    if not train:
        raise PairEnergyError(f"{dataset} has no training frames.")
    pick = np.random.default_rng(seed).choice(len(train), min(n_train, len(train)), replace=False)
    held = heldout_md([f for f in frames if f.info.get("split") == "test_molecule"])
    return {"train": [train[k] for k in pick], "val": split("validation"), HELDOUT_SPLIT: held}


def markdown(results: dict[str, Any]) -> str:
    """One table: held-out force R2 / RMSE / angle / energy MAE per student and correction."""
    lines = [
        "| student | correction | force R2 | force RMSE (eV/A) | angle (deg) "
        "| energy MAE (meV/atom) | offset removed |",
        "|---|---|---|---|---|---|---|",
    ]
    for student, result in results.items():
        for name, row in result["heldout"].items():
            lines.append(
                f"| {student} | {name} | {row['force_r2']:.4f} | {row['force_rmse']:.3f} | "
                f"{row['force_angle_deg']:.2f} | {row['energy_mae_mev_per_atom']:.2f} | "
                f"{row['energy_mae_offset_removed_mev_per_atom']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """CLI (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dataset")
    p.add_argument("out", help="OUT.json (and OUT.md)")
    p.add_argument("students", nargs="+", help="registry names or checkpoints")
    p.add_argument("--train-frames", type=int, default=4000, help="training frames sampled")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--knots", type=int, default=40)
    p.add_argument("--start", type=float, default=0.6, help="no pair force below (A)")
    p.add_argument("--max-force", type=float, default=30.0, help="as training's max_force")
    p.add_argument("--force-weights", type=float, nargs="+", default=[0.0, 1e-4, 1e-3, 1e-2])
    p.add_argument("--ridges", type=float, nargs="+", default=[1e-7, 1e-6, 1e-5])
    p.add_argument("--force-tolerance", type=float, default=0.005, help="validation RMSE slack")
    p.add_argument("--save", help="folder for the pair-corrected students (NAME-pairs.pt/json)")
    args = p.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        raise PairEnergyError(f"{out} exists; choose another OUT (results are not overwritten).")
    torch.set_num_threads(1)
    by_split = frame_sets(args.dataset, args.train_frames, args.seed, args.max_force)
    designs: dict[tuple, list] = {}
    results = {s: ablate(s, by_split, args, designs) for s in args.students}
    atomic_write_json(out, {"settings": {k: v for k, v in vars(args).items()}, "results": results})
    out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
