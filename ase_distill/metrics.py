"""Fidelity metrics of a student against its teacher (forces, energies), per element."""

from __future__ import annotations

import numpy as np
from ase.data import chemical_symbols

#: Atoms whose teacher force is smaller than this (eV/A) are left out of the angle error: the
#: direction of a near-zero force is noise and would dominate the mean.
ANGLE_MIN_FORCE = 0.1


def force_angle_errors(pred: np.ndarray, ref: np.ndarray, min_force: float = ANGLE_MIN_FORCE):
    """Angles (degrees) between predicted and reference forces, where ``|ref| >= min_force``."""
    pred = np.asarray(pred, dtype=float).reshape(-1, 3)
    ref = np.asarray(ref, dtype=float).reshape(-1, 3)
    nref = np.linalg.norm(ref, axis=1)
    npred = np.linalg.norm(pred, axis=1)
    mask = nref >= min_force
    cos = np.sum(pred[mask] * ref[mask], axis=1) / np.maximum(npred[mask] * nref[mask], 1e-12)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def force_metrics(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """RMSE, MAE (eV/A, over components), R2 (over components), mean angle error (deg)."""
    pred = np.asarray(pred, dtype=float).reshape(-1, 3)
    ref = np.asarray(ref, dtype=float).reshape(-1, 3)
    diff = pred - ref
    ss_res = float(np.sum(diff**2))
    ss_tot = float(np.sum((ref - ref.mean()) ** 2))
    angles = force_angle_errors(pred, ref)
    return {
        "force_rmse": float(np.sqrt(np.mean(diff**2))),
        "force_mae": float(np.mean(np.abs(diff))),
        "force_r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
        "force_angle_deg": float(np.mean(angles)) if angles.size else float("nan"),
        "n_atoms": int(len(ref)),
    }


def fidelity_report(
    pred_forces: np.ndarray,
    ref_forces: np.ndarray,
    numbers: np.ndarray,
    pred_energy: np.ndarray | None = None,
    ref_energy: np.ndarray | None = None,
    n_atoms: np.ndarray | None = None,
) -> dict:
    """Force metrics overall and by element, plus energy MAE per atom (meV/atom) if given."""
    numbers = np.asarray(numbers)
    out = force_metrics(pred_forces, ref_forces)
    out["by_element"] = {
        chemical_symbols[int(z)]: force_metrics(
            np.asarray(pred_forces)[numbers == z], np.asarray(ref_forces)[numbers == z]
        )
        for z in sorted(set(numbers.tolist()))
    }
    if pred_energy is not None and ref_energy is not None and n_atoms is not None:
        per_atom = (np.asarray(pred_energy) - np.asarray(ref_energy)) / np.asarray(n_atoms)
        out["energy_mae_mev_per_atom"] = float(np.mean(np.abs(per_atom)) * 1000)
        # relative energies within one molecule are what MD sees: error after removing the mean
        out["n_structures"] = int(len(per_atom))
    out["units"] = {
        "force_rmse": "eV/A",
        "force_mae": "eV/A",
        "force_angle_deg": "degree",
        "energy_mae_mev_per_atom": "meV/atom",
    }
    return out
