"""Train a student on teacher labels: energy per atom + forces (+ stress) matching.

Every epoch writes ``last.pt`` (full training state, atomic) and ``metrics.json``; the best EMA
model by validation force RMSE is ``best.pt`` + ``best.json`` (a loadable student checkpoint).
``resume=True`` continues from ``last.pt`` bit for bit: batch order comes from a generator seeded
by ``(seed, epoch)`` and all optimiser / EMA / scheduler state is restored.
"""

from __future__ import annotations

import io
import json
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from tqdm.auto import tqdm

from ase_distill.checkpoint import atomic_write_bytes, atomic_write_json, save_checkpoint
from ase_distill.graph import AtomsGraph, check_atoms
from ase_distill.metrics import fidelity_report
from ase_distill.model import ConservativePotential, StudentModel, size_config
from ase_distill.neighbors import neighbor_list
from ase_distill.ops import csr_offsets
from training.config import TrainConfig, to_dict
from training.generate import ENERGY_KEY, FORCES_KEY, STRESS_KEY, read_dataset


@dataclass
class Frame:
    """One labelled structure with its precomputed neighbour list."""

    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    edges: np.ndarray  # (2, E)
    shifts: np.ndarray  # (E, 3)
    energy: float
    forces: np.ndarray
    stress: np.ndarray | None  # (3, 3) or None


def filter_frames(frames: list[Atoms], max_force: float) -> list[Atoms]:
    """Frames whose largest teacher force component is at most ``max_force`` (0: keep all).

    Near-overlapping atoms from strong rattles reach hundreds of eV/A; in a squared loss a
    handful of them would outweigh thousands of MD frames.
    """
    if max_force <= 0:
        return list(frames)
    return [f for f in frames if np.abs(f.arrays[FORCES_KEY]).max() <= max_force]


def prepare(frames: list[Atoms], cutoff: float, species: tuple[int, ...]) -> list[Frame]:
    """Validate labelled frames and precompute their neighbour lists.

    Raises:
        ValueError: a frame lacks labels, has non-finite labels, or unknown elements.
    """
    from ase.stress import voigt_6_to_full_3x3_stress

    out = []
    for k, atoms in enumerate(frames):
        check_atoms(atoms, species)
        if ENERGY_KEY not in atoms.info or FORCES_KEY not in atoms.arrays:
            raise ValueError(f"Frame {k} lacks {ENERGY_KEY}/{FORCES_KEY}; regenerate the dataset.")
        energy = float(atoms.info[ENERGY_KEY])
        forces = np.asarray(atoms.arrays[FORCES_KEY], dtype=np.float64)
        if not (np.isfinite(energy) and np.isfinite(forces).all()):
            raise ValueError(f"Frame {k} has non-finite teacher labels.")
        stress = atoms.info.get(STRESS_KEY)
        if stress is not None:
            stress = voigt_6_to_full_3x3_stress(np.asarray(stress, dtype=np.float64))
        i, j, s = neighbor_list(atoms, cutoff, min_distance=None)
        out.append(
            Frame(
                numbers=atoms.numbers.astype(np.int64),
                positions=atoms.positions.astype(np.float64),
                cell=np.asarray(atoms.cell[:], dtype=np.float64),
                edges=np.stack([i, j]),
                shifts=s.astype(np.float64),
                energy=energy,
                forces=forces,
                stress=stress,
            )
        )
    return out


def collate(frames: list[Frame], dtype: torch.dtype) -> tuple[AtomsGraph, dict[str, torch.Tensor]]:
    """One batched graph and its targets."""
    counts = np.array([len(f.numbers) for f in frames])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    edges = np.concatenate([f.edges + s for f, s in zip(frames, starts)], axis=1)
    receivers = torch.from_numpy(edges[0])
    n = int(counts.sum())
    graph = AtomsGraph(
        positions=torch.from_numpy(np.concatenate([f.positions for f in frames])),
        numbers=torch.from_numpy(np.concatenate([f.numbers for f in frames])),
        cell=torch.from_numpy(np.stack([f.cell for f in frames])),
        batch=torch.from_numpy(np.repeat(np.arange(len(frames)), counts)),
        edge_index=torch.from_numpy(edges),
        edge_shift=torch.from_numpy(np.concatenate([f.shifts for f in frames])),
        offsets=csr_offsets(receivers, n),
        n_structures=len(frames),
    ).to(dtype=dtype)
    targets = {
        "energy": torch.tensor([f.energy for f in frames], dtype=dtype),
        "forces": torch.from_numpy(np.concatenate([f.forces for f in frames])).to(dtype),
        "n_atoms": torch.from_numpy(counts).to(dtype),
    }
    stressed = [f.stress is not None for f in frames]
    if any(stressed):
        targets["stress"] = torch.from_numpy(
            np.stack([f.stress if f.stress is not None else np.zeros((3, 3)) for f in frames])
        ).to(dtype)
        targets["stress_mask"] = torch.tensor(stressed)
    return graph, targets


def fit_energy_reference(frames: list[Frame], species: tuple[int, ...]) -> tuple[dict, float]:
    """Per-element reference energies by least squares, and a force scale (RMS component)."""
    counts = np.array([[np.sum(f.numbers == z) for z in species] for f in frames], dtype=float)
    energies = np.array([f.energy for f in frames])
    present = counts.sum(axis=0) > 0
    ref = np.zeros(len(species))
    sol, *_ = np.linalg.lstsq(counts[:, present], energies, rcond=None)
    ref[present] = sol
    scale = float(np.sqrt(np.mean(np.concatenate([f.forces.ravel() for f in frames]) ** 2)))
    return {z: float(e) for z, e in zip(species, ref)}, max(scale, 1e-3)


def _loss(model, graph, targets, config: TrainConfig, create_graph: bool):
    pot = ConservativePotential(model)
    out = pot.evaluate(graph, forces=True, stress="stress" in targets, create_graph=create_graph)
    e_err = (out["energy"] - targets["energy"]) / targets["n_atoms"]
    loss = config.energy_weight * torch.mean(e_err**2)
    loss = loss + config.forces_weight * torch.mean((out["forces"] - targets["forces"]) ** 2)
    if "stress" in targets:
        m = targets["stress_mask"]
        loss = loss + config.stress_weight * torch.mean(
            (out["stress"][m] - targets["stress"][m]) ** 2
        )
    return loss, out


def predict(
    model: StudentModel, frames: list[Frame], batch_size: int = 32
) -> dict[str, np.ndarray]:
    """Energies and forces of ``frames`` (float64 evaluation on the model's device)."""
    device = next(model.parameters()).device
    energies, forces = [], []
    for k in range(0, len(frames), batch_size):
        graph, _ = collate(frames[k : k + batch_size], torch.float64)
        out = ConservativePotential(model).evaluate(graph.to(device), forces=True)
        energies.append(out["energy"].detach().cpu().numpy())
        forces.append(out["forces"].detach().cpu().numpy())
    return {"energy": np.concatenate(energies), "forces": np.concatenate(forces)}


def evaluate_frames(model: StudentModel, frames: list[Frame]) -> dict[str, Any]:
    """Fidelity report of ``model`` on labelled frames (see :mod:`ase_distill.metrics`)."""
    eval_model = _copy_double(model)
    pred = predict(eval_model, frames)
    return fidelity_report(
        pred["forces"],
        np.concatenate([f.forces for f in frames]),
        np.concatenate([f.numbers for f in frames]),
        pred["energy"],
        np.array([f.energy for f in frames]),
        np.array([len(f.numbers) for f in frames]),
    )


def _copy_double(model: StudentModel) -> StudentModel:
    copy = StudentModel(model.config)
    copy.load_state_dict(model.state_dict())
    return copy.double().to(next(model.parameters()).device).eval()


class EMA:
    """Exponential moving average of a model's floating-point state."""

    def __init__(self, model: StudentModel, decay: float) -> None:
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: StudentModel) -> None:
        """Blend the current weights in."""
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                self.state[k].mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)
            else:
                self.state[k].copy_(v)

    def model(self, like: StudentModel) -> StudentModel:
        """A new model holding the averaged weights."""
        m = StudentModel(like.config)
        m.load_state_dict(self.state)
        return m.to(next(like.parameters()).device)


def _save_state(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def train(
    config: TrainConfig,
    resume: bool = False,
    progress: bool = True,
    stop_after_epochs: int | None = None,
) -> dict[str, Any]:
    """Train (or resume) a student; returns the final summary (also in ``summary.json``).

    Args:
        config: the run.
        resume: continue from ``OUTPUT/last.pt``.
        progress: show progress bars.
        stop_after_epochs: stop (as if killed) after this many epochs in this call; for tests.
    """
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    arch = size_config(config.size, **config.architecture)
    all_frames = read_dataset(config.dataset)
    by_split: dict[str, list[Atoms]] = {}
    for f in filter_frames(all_frames, config.max_force):
        by_split.setdefault(f.info.get("split", "train"), []).append(f)
    if not by_split.get("train"):
        raise ValueError(f"Dataset {config.dataset} has no training frames.")
    train_frames = prepare(by_split["train"], arch.cutoff, arch.species)
    val_frames = prepare(
        by_split.get("validation") or by_split["train"][:50], arch.cutoff, arch.species
    )

    torch.manual_seed(config.seed)
    model = StudentModel(arch)
    reference, scale = fit_energy_reference(train_frames, arch.species)
    model.set_energy_reference(reference, scale)
    device = torch.device(config.device)
    model.to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    ema = EMA(model, config.ema_decay)
    start_epoch, best, bad_epochs, history, seconds = 0, math.inf, 0, [], 0.0
    last_path = out / "last.pt"
    if resume:
        if not last_path.is_file():
            raise ValueError(f"Cannot resume: {last_path} does not exist; start without --resume.")
        state = torch.load(last_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        ema.state = state["ema"]
        start_epoch, best, bad_epochs = state["epoch"], state["best"], state["bad_epochs"]
        seconds = state["seconds"]
        history = json.loads((out / "metrics.json").read_text())["epochs"]
    atomic_write_json(out / "config.json", to_dict(config))

    def lr_at(epoch: int) -> float:
        t = min(epoch / max(config.epochs, 1), 1.0)
        return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * t))

    epochs_run = 0
    stopped_early = False
    for epoch in range(start_epoch, config.epochs):
        if bad_epochs >= config.patience:
            stopped_early = True
            break
        if stop_after_epochs is not None and epochs_run >= stop_after_epochs:
            return {"complete": False, "epoch": epoch}
        t0 = time.time()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(epoch)
        gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
        order = torch.randperm(len(train_frames), generator=gen).tolist()
        batches = [
            order[k : k + config.batch_size] for k in range(0, len(order), config.batch_size)
        ]
        if config.max_steps_per_epoch:
            batches = batches[: config.max_steps_per_epoch]
        model.train()
        total = 0.0
        bar = tqdm(
            batches, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False
        )
        for idx in bar:
            graph, targets = collate([train_frames[i] for i in idx], torch.float32)
            graph = graph.to(device)
            targets = {k: v.to(device) for k, v in targets.items()}
            loss, _ = _loss(model, graph, targets, config, create_graph=True)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            ema.update(model)
            total += float(loss.detach())
            bar.set_postfix(loss=f"{float(loss.detach()):.4g}")
        ema_model = ema.model(model)
        val = evaluate_frames(ema_model, val_frames)
        seconds += time.time() - t0
        row = {
            "epoch": epoch + 1,
            "lr": lr_at(epoch),
            "train_loss": total / max(len(batches), 1),
            "val_force_rmse": val["force_rmse"],
            "val_force_r2": val["force_r2"],
            "val_energy_mae_mev_per_atom": val["energy_mae_mev_per_atom"],
            "seconds": round(seconds, 1),
        }
        history.append(row)
        if val["force_rmse"] < best:
            best, bad_epochs = val["force_rmse"], 0
            save_checkpoint(ema_model, out / "best", {"training": {"epoch": epoch + 1}})
        else:
            bad_epochs += 1
        _save_state(
            last_path,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "ema": ema.state,
                "epoch": epoch + 1,
                "best": best,
                "bad_epochs": bad_epochs,
                "seconds": seconds,
            },
        )
        atomic_write_json(out / "metrics.json", {"epochs": history})
        epochs_run += 1
        if progress:
            tqdm.write(
                f"epoch {epoch + 1}: loss {row['train_loss']:.4g}  val F-RMSE "
                f"{val['force_rmse']:.4f} eV/A  R2 {val['force_r2']:.4f}  "
                f"E-MAE {val['energy_mae_mev_per_atom']:.2f} meV/atom"
            )
    return finish(config, by_split, arch, history, seconds, stopped_early)


def hardware(device: str) -> str:
    """Where training ran, for the model card (GPU name or CPU and thread count)."""
    if torch.device(device).type == "cuda":
        return f"{torch.cuda.get_device_name(torch.device(device))}, torch {torch.__version__}"
    return (
        f"{platform.machine()} {platform.processor() or ''} CPU, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    )


def finish(config, by_split, arch, history, seconds, stopped_early) -> dict[str, Any]:
    """Evaluate the best model on test splits and write its model card."""
    from ase_distill.checkpoint import load_checkpoint

    out = Path(config.output)
    best, _ = load_checkpoint(out / "best")
    metrics: dict[str, Any] = {}
    subsets = {s: by_split.get(s, []) for s in ("validation", "test", "test_molecule")}
    # the project's target: held-out molecules, teacher MD at 300 and 600 K
    subsets["heldout_md_300_600K"] = [
        f
        for f in by_split.get("test_molecule", [])
        if f.info.get("kind") == "md" and float(f.info.get("param", 0)) <= 600.0
    ]
    for split, frames in subsets.items():
        if frames:
            metrics[split] = evaluate_frames(best, prepare(frames, arch.cutoff, arch.species))
    dataset_dir = Path(config.dataset).parent
    data_summary = {}
    if (dataset_dir / "summary.json").is_file():
        data_summary = json.loads((dataset_dir / "summary.json").read_text())
    card = {
        "teacher": data_summary.get("teacher", {"name": "unknown"}),
        "training_data": {
            "dataset": str(config.dataset),
            "frames": {k: len(v) for k, v in by_split.items()},
            "molecules": data_summary.get("molecules"),
            "holdout_molecules": data_summary.get("holdout_molecules"),
            "generation": (data_summary.get("config") or {}),
        },
        "training": {
            "config": to_dict(config),
            "epochs_run": len(history),
            "stopped_early": stopped_early,
            "seconds": round(seconds, 1),
            "hardware": hardware(config.device),
        },
        "metrics": metrics,
    }
    save_checkpoint(best, out / "best", card)
    summary = {"complete": True, "best": str(out / "best.pt"), "metrics": metrics}
    atomic_write_json(out / "summary.json", summary)
    return summary
