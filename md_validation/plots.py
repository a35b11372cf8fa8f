"""PNG plots of a validation run (matplotlib, Agg backend; nothing global is changed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.data import chemical_symbols

from ase_distill.metrics import force_angle_errors


def _figure(*args, **kwargs):
    from matplotlib.figure import Figure  # object API: no pyplot state, no backend switching

    return Figure(*args, **kwargs)


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path.name


def energy_plot(runs: dict, path: Path) -> str:
    """Total, potential and kinetic energy (eV/atom, shifted to start at 0) against time."""
    fig = _figure(figsize=(10, 3.2))
    axes = fig.subplots(1, 3)
    for label, r in runs.items():
        n = r.n_atoms
        t = np.asarray(r.time_ps)
        for ax, series, name in zip(
            axes,
            (r.etot, np.asarray(r.epot), np.asarray(r.ekin)),
            ("total", "potential", "kinetic"),
        ):
            ax.plot(t, (series - series[0]) / n * 1000, label=label, lw=1)
            ax.set_title(f"{name} energy")
            ax.set_xlabel("time (ps)")
    axes[0].set_ylabel("E - E(0) (meV/atom)")
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def temperature_plot(runs: dict, target: float, path: Path) -> str:
    """Instantaneous temperature against time with the target."""
    fig = _figure(figsize=(6, 3.2))
    ax = fig.subplots()
    for label, r in runs.items():
        ax.plot(r.time_ps, r.temperature, label=label, lw=1)
    ax.axhline(target, color="k", ls="--", lw=1, label="target")
    ax.set_xlabel("time (ps)")
    ax.set_ylabel("temperature (K)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def distribution_plot(x, curves: dict, xlabel: str, ylabel: str, path: Path) -> str:
    """Overlay of distributions (RDF or distance distribution)."""
    fig = _figure(figsize=(6, 3.2))
    ax = fig.subplots()
    for label, y in curves.items():
        ax.plot(x, y, label=label, lw=1.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return _save(fig, path)


def series_plot(x, y, ylabel: str, path: Path) -> str:
    """One time series against time in ps."""
    fig = _figure(figsize=(6, 3.0))
    ax = fig.subplots()
    ax.plot(x, y, lw=1.0)
    ax.set_xlabel("time (ps)")
    ax.set_ylabel(ylabel)
    return _save(fig, path)


def partial_rdf_plot(curves: dict[str, dict[str, tuple]], path: Path) -> str:
    """One panel per element pair: g_ab(r) of each calculator."""
    pairs = sorted(curves)
    fig = _figure(figsize=(3.4 * max(len(pairs), 1), 3.0))
    axes = np.atleast_1d(fig.subplots(1, max(len(pairs), 1)))
    for ax, pair in zip(axes, pairs):
        for label, (x, y) in curves[pair].items():
            ax.plot(x, y, lw=1.2, label=label)
        ax.set_title(f"g {pair}")
        ax.set_xlabel("r (A)")
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def bond_histograms(bond_data: dict[str, dict[str, np.ndarray]], path: Path) -> str:
    """Bond-length histograms per element pair, student vs teacher."""
    pairs = sorted(bond_data)
    fig = _figure(figsize=(3.2 * max(len(pairs), 1), 3.0))
    axes = np.atleast_1d(fig.subplots(1, max(len(pairs), 1)))
    for ax, pair in zip(axes, pairs):
        for label, values in bond_data[pair].items():
            if len(values):
                ax.hist(values, bins=40, histtype="step", density=True, label=label)
        ax.set_title(pair)
        ax.set_xlabel("bond length (A)")
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def force_analysis(
    pred: np.ndarray, ref: np.ndarray, numbers: np.ndarray, path: Path, title: str
) -> str:
    """The seed's six-panel force figure.

    Panels: magnitude parity, error histogram, per-atom error, component parity, per-element
    error, angle distribution.
    """
    pred = np.asarray(pred).reshape(-1, 3)
    ref = np.asarray(ref).reshape(-1, 3)
    err = np.linalg.norm(pred - ref, axis=1)
    fig = _figure(figsize=(13, 7.5))
    ax = fig.subplots(2, 3).ravel()
    mp, mr = np.linalg.norm(pred, axis=1), np.linalg.norm(ref, axis=1)
    lim = float(max(mp.max(initial=0), mr.max(initial=0))) * 1.05 or 1.0
    ax[0].scatter(mr, mp, s=3, alpha=0.4)
    ax[0].plot([0, lim], [0, lim], "k--", lw=1)
    ax[0].set(
        xlabel="teacher |F| (eV/A)", ylabel="student |F| (eV/A)", title="force magnitude parity"
    )
    ax[1].hist((pred - ref).ravel(), bins=80)
    ax[1].set(xlabel="F_student - F_teacher (eV/A)", ylabel="count", title="component error")
    ax[2].plot(err, ".", ms=2)
    ax[2].set(xlabel="atom (frame-major)", ylabel="|dF| (eV/A)", title="per-atom error")
    lo, hi = float(ref.min(initial=0)), float(ref.max(initial=0))
    for k, c in enumerate("xyz"):
        ax[3].scatter(ref[:, k], pred[:, k], s=3, alpha=0.4, label=c)
    ax[3].plot([lo, hi], [lo, hi], "k--", lw=1)
    ax[3].set(xlabel="teacher F (eV/A)", ylabel="student F (eV/A)", title="component parity")
    ax[3].legend(fontsize=8)
    elements = sorted(set(np.asarray(numbers).tolist()))
    rmse = [np.sqrt(np.mean((pred[numbers == z] - ref[numbers == z]) ** 2)) for z in elements]
    ax[4].bar([chemical_symbols[z] for z in elements], rmse)
    ax[4].set(ylabel="force RMSE (eV/A)", title="per-element error")
    angles = force_angle_errors(pred, ref)
    ax[5].hist(angles, bins=60, range=(0, 180))
    ax[5].set(
        xlabel="angle (deg), |F_teacher| >= 0.1 eV/A",
        ylabel="count",
        title=f"angle error (mean {np.mean(angles) if angles.size else float('nan'):.1f} deg)",
    )
    fig.suptitle(title)
    return _save(fig, path)
