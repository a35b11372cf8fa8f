"""Correct a water student's liquid structure towards its teacher's: iterative Boltzmann inversion.

Water-tiny's forces on SevenNet-0's frames are nearly exact (R2 0.999), yet its 300 K liquid is
more ordered than the teacher's (O-O first shell 2.62-2.70 against 2.35-2.56): a small bias in
the energy of whole ensembles, which per-frame force errors cannot show, pulls its MD towards
its own structure (``docs/water-experiments.md``). Structure-based coarse graining has the
standard answer (Reith, Puetz and Mueller-Plathe 2003): an additive pair potential per species
pair, ``dV_ab(r) = alpha kT ln(g_ab,student(r) / g_ab,teacher(r))``, repeated until the radial
distribution functions agree. Here the ``g`` are the intermolecular partials (O-O, O-H, H-H) of
the student's own NVT and of the teacher's, and ``dV`` goes into the student's
:class:`~ase_distill.model.PairTable` (a cubic B-spline pair force, fitted to ``d dV / dr`` by
least squares), keeping every weight of the student. Below ``min_r`` of each pair (the
intramolecular O-H bond and H-H distance, and distances the liquid never visits) the
correction is held at zero force. A student that already has a table gets the correction
added to it (the next iteration).

``python -m training.water_ibi STUDENT OUT --student-frames SPEC --teacher-frames SPEC
[--alpha 1 --start 1.6 --knots 40]`` (SPEC as in :mod:`md_validation.compare_rdf`:
``PATH[@START:STOP][+PATH...]``) writes ``OUT.pt`` / ``OUT.json`` (card metrics recomputed on
the student's dataset, after its mean energy per molecule on the training frames is recentred
on the student's) and ``OUT_ibi.json`` / ``OUT_ibi.png`` (the partials and ``dV``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.units import kB

from ase_distill.checkpoint import atomic_write_json, checkpoint_paths
from ase_distill.model import PairTable, StudentModel

#: Intermolecular pairs and the distance below which each gets no correction (A): water's O-H
#: bond (0.97) and intramolecular H-H (1.53 +- 0.1) lie below, as does O-O contact.
MIN_R = {(8, 8): 2.2, (1, 8): 1.6, (1, 1): 1.9}
#: g below this is too rarely sampled for its logarithm (the correction is held constant there).
G_FLOOR = 0.05
SMOOTH_A = 0.05  # Gaussian smoothing of dV before its derivative: bins of 0.04 A are noisy


class IBIError(ValueError):
    """Frames or settings the Boltzmann inversion cannot use."""


def partials(frames: list[Atoms]) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """Intermolecular partial g(r) of water frames (O H H order), pair by pair."""
    from md_validation.metrics import rdf

    return {pair: rdf(frames, pair=pair, intermolecular=True) for pair in MIN_R}


def boltzmann_correction(
    r: np.ndarray, g_student: np.ndarray, g_teacher: np.ndarray, kt: float, alpha: float
) -> np.ndarray:
    """``alpha kT ln(g_student / g_teacher)`` (eV), smoothed, constant where either g is small.

    Where the student's pairs are too many, the correction is repulsive, and the reverse.
    """
    sampled = (g_student > G_FLOOR) & (g_teacher > G_FLOOR)
    if not sampled.any():
        raise IBIError("no distance where both g(r) exceed the floor: too few frames?")
    dv = np.zeros_like(r)
    dv[sampled] = alpha * kt * np.log(g_student[sampled] / g_teacher[sampled])
    first = int(np.argmax(sampled))
    dv[:first] = dv[first]  # the unsampled core: no force from the correction
    dx = float(r[1] - r[0])
    width = max(1, int(round(3 * SMOOTH_A / dx)))
    kernel = np.exp(-0.5 * (np.arange(-width, width + 1) * dx / SMOOTH_A) ** 2)
    padded = np.pad(dv, width, mode="edge")
    return np.convolve(padded, kernel / kernel.sum(), mode="valid")


def neutral_ramp(r: np.ndarray, dv: np.ndarray, g: np.ndarray, min_r: float) -> float:
    """``A`` of the ramp ``A (1 - r / r_end)`` that makes the pair energy average zero over ``g``.

    The pair energy ``V = dv - dv(r_end)`` (held at ``V(min_r)`` below ``min_r``) summed over a
    liquid's pairs is about ``rho int 4 pi r^2 g V``: with the ramp this vanishes for the
    teacher's liquid at any density to first order, so the table moves the structure but not
    the liquid's energy (the pressure-correction ramp of structure-based coarse graining).
    """
    above = np.maximum(r, min_r)
    v = np.interp(above, r, dv) - dv[-1]
    ramp = 1.0 - above / r[-1]
    weight = r**2 * g
    return float(-np.sum(weight * v) / np.sum(weight * ramp))


def force_target(
    table: PairTable, r: np.ndarray, dv: np.ndarray, min_r: float, ramp: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """The pair force ``d dv / dr`` on a grid over the table: ``(grid, target)``.

    Below ``min_r`` and beyond the sampled range (up to the table's end) the target force is
    zero, so a table fitted to it has the energy ``dv`` up to a constant, with no force on
    bonds; with ``ramp``, plus ``ramp (1 - r / r_end)`` above ``min_r`` (:func:`neutral_ramp`).
    """
    end = table.start + table.spacing * table.segments
    grid = np.linspace(table.start, end, 600)
    target = np.interp(grid, r, np.gradient(dv, r), left=0.0, right=0.0) - ramp / r[-1]
    target[(grid < min_r) | (grid > r[-1])] = 0.0
    return grid, target


def fit_force(
    table: PairTable,
    r: np.ndarray,
    dv: np.ndarray,
    min_r: float,
    ramp: float = 0.0,
    ridge: float = 1e-8,
) -> np.ndarray:
    """Table coefficients whose force ``g = dV/dr`` matches :func:`force_target`."""
    grid, target = force_target(table, r, dv, min_r, ramp)
    x = table.force_basis(torch.as_tensor(grid, dtype=torch.float64)).numpy()
    return np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ target)


def corrected_student(
    model: StudentModel,
    student_g: dict,
    teacher_g: dict,
    temperature_k: float,
    alpha: float,
    start: float,
    knots: int,
    neutral: bool = False,
) -> tuple[StudentModel, dict[str, Any]]:
    """``model`` with the Boltzmann-inversion tables added, and the record of the fit.

    The tables' constant energy on the pairs inside each molecule (below the table's start) is
    taken off O's reference energy, so that a molecule's energy is unchanged. ``neutral`` adds
    each pair's :func:`neutral_ramp` for the teacher's ``g``.

    Raises:
        IBIError: ``model`` has a table of other knots or start (corrections cannot be added).
    """
    from training.pair_correction import with_tables

    if model.config.pair_knots and (model.config.pair_knots, model.config.pair_start) != (
        knots,
        start,
    ):
        raise IBIError(
            f"the student's pair table has {model.config.pair_knots} knots from "
            f"{model.config.pair_start} A; pass --knots and --start to match it."
        )
    table = PairTable(1, knots, start, model.cutoff)
    core = table.energy_basis(torch.tensor([0.5], dtype=torch.float64))[0].numpy()
    species = model.config.species
    tables, record, molecule_shift = {}, {}, 0.0
    for pair, min_r in MIN_R.items():
        r, g_s = student_g[pair]
        _, g_t = teacher_g[pair]
        dv = boltzmann_correction(r, g_s, g_t, kB * temperature_k, alpha)
        ramp = neutral_ramp(r, dv, g_t, min_r) if neutral else 0.0
        coefficients = fit_force(table, r, dv, min_r, ramp)
        # the pairs inside each molecule (2 O-H, 1 H-H) lie below min_r: a constant energy
        molecule_shift += {(1, 8): 2.0, (1, 1): 1.0}.get(pair, 0.0) * float(core @ coefficients)
        if model.config.pair_knots:
            a, b = (species.index(z) for z in pair)
            coefficients = coefficients + model.pair.table[a, b].double().numpy()
        tables[pair] = coefficients
        record["-".join(map(str, pair))] = {
            "r": r.tolist(),
            "g_student": g_s.tolist(),
            "g_teacher": g_t.tolist(),
            "dv_eV": dv.tolist(),
            "min_r_A": min_r,
            "ramp_eV": ramp,
            "coefficients": coefficients.tolist(),
        }
    out = with_tables(model, start, tables)
    with torch.no_grad():  # each molecule's constant goes to O's reference: energies unshifted
        out.readout.reference[species.index(8)] -= molecule_shift
    record["molecule_shift_eV"] = molecule_shift
    return out, record


def recentre(model: StudentModel, corrected: StudentModel, frames: list[Atoms]) -> float:
    """Shift ``corrected``'s O reference: its mean energy per molecule on ``frames`` is ``model``'s.

    The tables add the liquid's pair energy, about the same to every frame of one density: a
    per-molecule constant that the reference energies absorb, as a refit of them on the data
    would (forces unchanged). Returns the shift taken off (eV per molecule).
    """
    from training.train import predict, prepare

    graphs = prepare(frames, model.cutoff, model.species)
    change = (
        predict(corrected, graphs, derivatives=False)["energy"]
        - predict(model, graphs, derivatives=False)["energy"]
    )
    per_molecule = float(np.mean(change / np.array([np.sum(f.numbers == 8) for f in frames])))
    with torch.no_grad():
        corrected.readout.reference[model.config.species.index(8)] -= per_molecule
    return per_molecule


def _plot(record: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(11, 5.5), sharex="col")
    pairs = {k: v for k, v in record.items() if isinstance(v, dict)}
    for col, (name, row) in enumerate(pairs.items()):
        axes[0, col].plot(row["r"], row["g_teacher"], label="teacher")
        axes[0, col].plot(row["r"], row["g_student"], label="student")
        axes[0, col].set(title=f"{name} (Z) intermolecular g(r)")
        axes[1, col].plot(row["r"], np.asarray(row["dv_eV"]) * 1000)
        axes[1, col].axvline(row["min_r_A"], color="0.6", lw=0.8)
        axes[1, col].set(xlabel="r (A)", ylabel="dV (meV)")
    axes[0, 0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """CLI (see the module docstring)."""
    from ase_distill.registry import resolve_student
    from md_validation.compare_rdf import read_frames
    from training.generate import read_dataset
    from training.train import save_with_metrics, split_frames

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("student", help="student name or checkpoint")
    p.add_argument("out", help="output checkpoint stem (OUT.pt, OUT.json, OUT_ibi.json/png)")
    p.add_argument("--student-frames", required=True, help="the student's NVT frames (SPEC)")
    p.add_argument("--teacher-frames", required=True, help="the teacher's NVT frames (SPEC)")
    p.add_argument("--temperature", type=float, default=300.0, help="of both runs (K)")
    p.add_argument("--alpha", type=float, default=1.0, help="damping of the update (0, 1]")
    p.add_argument("--start", type=float, default=1.6, help="the table's start (A)")
    p.add_argument("--knots", type=int, default=40, help="B-spline coefficients per pair")
    p.add_argument(
        "--neutral", action="store_true", help="add the ramp that keeps the liquid's energy"
    )
    p.add_argument(
        "--recentre-every", type=int, default=5, help="recentre on every k-th training frame"
    )
    p.add_argument("--dataset", help="the card's metrics on (default: the card's dataset)")
    args = p.parse_args(argv)
    out = Path(args.out)
    try:
        if checkpoint_paths(out)[0].exists():
            raise IBIError(f"{out}.pt exists; choose another OUT (results are not overwritten).")
        if not 0 < args.alpha <= 1:
            raise IBIError(f"--alpha must be in (0, 1], got {args.alpha}.")
        model, card = resolve_student(args.student)
        model = model.double().eval()
        student_g = partials(read_frames(args.student_frames))
        teacher_g = partials(read_frames(args.teacher_frames))
        corrected, record = corrected_student(
            model, student_g, teacher_g, args.temperature, args.alpha, args.start, args.knots,
            args.neutral,
        )  # fmt: skip
    except ValueError as exc:  # IBIError and the readers' errors
        print(f"water_ibi: error: {exc}", file=sys.stderr)
        return 2
    fit = {
        "student": args.student,
        "method": "iterative Boltzmann inversion of intermolecular partial g(r)",
        "student_frames": args.student_frames,
        "teacher_frames": args.teacher_frames,
        "temperature_K": args.temperature,
        "alpha": args.alpha,
        "start_A": args.start,
        "knots": args.knots,
        "neutral": args.neutral,
        "pairs": record,
    }
    by_split, _ = split_frames(read_dataset(args.dataset or card["training_data"]["dataset"]), 0.0)
    # a subsample: the mean shift is settled long before water-tiny's 1,635 frames
    fit["recentred_on_every"] = args.recentre_every
    train = by_split["train"][:: args.recentre_every]
    fit["recentred_eV_per_molecule"] = recentre(model, corrected, train)
    summary = {k: v for k, v in fit.items() if k != "pairs"}
    card = save_with_metrics(corrected, card, out, by_split, "boltzmann_inversion", summary)
    atomic_write_json(f"{out}_ibi.json", fit)
    _plot(record, Path(f"{out}_ibi.png"))
    for split, m in card["metrics"].items():
        print(f"{split}: force R2 {m['force_r2']:.4f}, energy MAE "
              f"{m['energy_mae_mev_per_atom']:.2f} meV/atom, stress MAE "
              f"{m.get('stress_mae_gpa', float('nan')):.3f} GPa")  # fmt: skip
    print(f"wrote {out}.pt / .json, {out}_ibi.json / .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
