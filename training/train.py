"""Train a student on teacher labels: energy per atom + forces (+ stress) matching.

Every epoch writes ``last.pt`` (full training state *and* the metrics history, atomic) and then
``metrics.json`` (a view of that history, so a kill between the two loses nothing); the best EMA
model by validation force RMSE is ``best.pt`` + ``best.json`` (a loadable student checkpoint).
``resume=True`` continues from ``last.pt`` bit for bit: batch order comes from a generator seeded
by ``(seed, epoch)`` and all optimiser / EMA / scheduler state is restored.

Graphs come from the project's one graph builder (:func:`ase_distill.graph.structure_graph`,
cached per frame, and :func:`ase_distill.graph.batch_graphs` per batch).
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import math
import os
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
from ase_distill.graph import AtomsGraph, StructureGraph, batch_graphs, structure_graph
from ase_distill.metrics import fidelity_report
from ase_distill.model import (
    ConservativePotential,
    StudentConfig,
    StudentModel,
    deepen,
    size_config,
)
from training.config import ConfigError, TrainConfig, to_dict
from training.ensemble_gap import GapGroup, ensemble_gap_loss, gap_groups
from training.generate import ENERGY_KEY, FORCES_KEY, STRESS_KEY, read_dataset
from training.heldout import HELDOUT_SPLIT, heldout_md
from training.lineage import total_seconds, training_stages
from training.structure_matching import StructureTerm

#: Config keys that may change on ``--resume`` (they do not change what was trained so far).
RESUMABLE_CHANGES = {
    "epochs",
    "patience",
    "threads",
    "device",
    "time_budget_minutes",
    "keep_epochs",
}
#: Files of a run; a folder holding any of them is a run (refused without resume / overwrite).
RUN_FILES = ("last.pt", "best.pt", "best.json", "metrics.json", "summary.json", "config.json")
EVAL_SPLITS = ("validation", "test", "test_molecule")


class TrainingError(ValueError):
    """Training cannot go on (non-finite loss or gradients, a refused resume, a taken folder)."""


@dataclass
class Sample:
    """One labelled frame: its cached graph, teacher labels and where it came from."""

    graph: StructureGraph
    energy: float
    forces: np.ndarray
    stress: np.ndarray | None  # (3, 3) or None
    index: int  # frame number in dataset.xyz
    origin: str  # seed molecule and generation task, for error messages
    molecules: np.ndarray | None = None  # molecule of every atom (molecular force loss)


def filter_frames(frames: list[Atoms], max_force: float) -> list[Atoms]:
    """Frames whose largest teacher force component is at most ``max_force`` (0: keep all).

    Near-overlapping atoms from strong rattles reach hundreds of eV/A; in a squared loss a
    handful of them would outweigh thousands of MD frames. Applied to training frames only.
    """
    if max_force <= 0:
        return list(frames)
    return [f for f in frames if np.abs(f.arrays[FORCES_KEY]).max() <= max_force]


def prepare(
    frames: list[Atoms], cutoff: float, species: tuple[int, ...], molecules: bool = False
) -> list[Sample]:
    """Validate labelled frames and cache their graphs (and, with ``molecules``, molecules).

    Raises:
        ValueError: a frame lacks labels, has non-finite labels, or unknown elements.
    """
    from ase.stress import voigt_6_to_full_3x3_stress

    out = []
    for k, atoms in enumerate(frames):
        index = int(atoms.info.get("frame_index", k))
        if ENERGY_KEY not in atoms.info or FORCES_KEY not in atoms.arrays:
            raise ValueError(f"Frame {index} lacks {ENERGY_KEY}/{FORCES_KEY}; regenerate it.")
        energy = float(atoms.info[ENERGY_KEY])
        forces = np.asarray(atoms.arrays[FORCES_KEY], dtype=np.float64)
        if not (np.isfinite(energy) and np.isfinite(forces).all()):
            raise ValueError(f"Frame {index} has non-finite teacher labels.")
        stress = atoms.info.get(STRESS_KEY)
        if stress is not None:
            stress = voigt_6_to_full_3x3_stress(np.asarray(stress, dtype=np.float64))
        graph = structure_graph(atoms, cutoff, species, min_distance=None)
        origin = f"{atoms.info.get('seed', '?')} {atoms.info.get('task', '')}".strip()
        mol = _molecules(atoms) if molecules else None
        out.append(Sample(graph, energy, forces, stress, index, origin, mol))
    return out


def _shallower(old: StudentConfig, new: StudentConfig) -> bool:
    """``old`` is ``new`` with fewer interaction blocks (it can start ``new``: ``deepen``)."""
    same = {**old.to_dict(), "interactions": new.interactions} == new.to_dict()
    return same and old.interactions < new.interactions


def _with_pair_table_of(arch: StudentConfig, init_from: str) -> StudentConfig:
    """``arch`` with the pair table of the ``init_from`` student, when only it has one.

    A shipped student may carry a pair table fitted after training (``training.pair_energy``);
    fine-tuning it keeps the table as it is (a buffer, not trained), and the network adapts.
    """
    from dataclasses import replace

    from ase_distill.registry import resolve_student

    old = getattr(resolve_student(init_from)[0], "config", None)
    if not isinstance(old, StudentConfig) or not old.pair_knots or arch.pair_knots:
        return arch
    return replace(arch, pair_knots=old.pair_knots, pair_start=old.pair_start)


def _molecules(atoms: Atoms) -> np.ndarray:
    """Molecule of every atom (imported here: training does not import md_validation early)."""
    from md_validation.metrics import molecule_index

    return molecule_index(atoms)


def collate(
    samples: list[Sample], dtype: torch.dtype, device: torch.device | str = "cpu"
) -> tuple[AtomsGraph, dict[str, torch.Tensor]]:
    """One batched graph (the project's batching step) and its targets."""
    graph = batch_graphs([s.graph for s in samples], dtype, device)
    counts = np.array([len(s.graph.numbers) for s in samples])
    targets = {
        "energy": torch.tensor([s.energy for s in samples], dtype=dtype),
        "forces": torch.from_numpy(np.concatenate([s.forces for s in samples])).to(dtype),
        "n_atoms": torch.from_numpy(counts).to(dtype),
    }
    stressed = [s.stress is not None for s in samples]
    if any(stressed):
        zeros = np.zeros((3, 3))
        stacked = np.stack([s.stress if s.stress is not None else zeros for s in samples])
        targets["stress"] = torch.from_numpy(stacked).to(dtype)
        targets["stress_mask"] = torch.tensor(stressed)
    if all(s.molecules is not None for s in samples):
        targets["molecule"] = torch.from_numpy(_global_molecules(samples))
    return graph, {k: v.to(device) for k, v in targets.items()}


def _global_molecules(samples: list[Sample]) -> np.ndarray:
    """Molecule of every atom of a batch, numbered across its samples."""
    out, offset = [], 0
    for s in samples:
        out.append(s.molecules + offset)
        offset += int(s.molecules.max()) + 1
    return np.concatenate(out)


def fit_energy_reference(samples: list[Sample], species: tuple[int, ...]) -> tuple[dict, float]:
    """Per-element reference energies by least squares, and a force scale (RMS component)."""
    counts = np.array([[np.sum(s.graph.numbers == z) for z in species] for s in samples], float)
    energies = np.array([s.energy for s in samples])
    present = counts.sum(axis=0) > 0
    ref = np.zeros(len(species))
    sol, *_ = np.linalg.lstsq(counts[:, present], energies, rcond=None)
    ref[present] = sol
    scale = float(np.sqrt(np.mean(np.concatenate([s.forces.ravel() for s in samples]) ** 2)))
    return {z: float(e) for z, e in zip(species, ref)}, max(scale, 1e-3)


def refit_energy_reference(
    model: StudentModel, samples: list[Sample], max_samples: int = 3000, seed: int = 0
) -> dict[int, float]:
    """Shift ``model``'s per-element references by a least-squares fit of its energy residuals.

    A student started from another dataset's weights keeps that data's per-element offsets;
    on new chemistry they show up as a constant energy error per molecule. Fitting the
    residuals ``E_teacher - E_student`` to element counts (on up to ``max_samples`` frames)
    removes the part of that error that element counts explain. Returns the shifts (eV).
    """
    rng = np.random.default_rng(seed)
    chosen = [samples[k] for k in rng.permutation(len(samples))[:max_samples]]
    species = tuple(model.config.species)
    energies = []
    with torch.no_grad():
        for k in range(0, len(chosen), 64):
            graph, _ = collate(chosen[k : k + 64], torch.float64, torch.device("cpu"))
            out = ConservativePotential(_copy_double(model)).evaluate(graph, forces=False)
            energies.append(out["energy"].numpy())
    residual = np.array([s.energy for s in chosen]) - np.concatenate(energies)
    counts = np.array([[np.sum(s.graph.numbers == z) for z in species] for s in chosen], float)
    present = counts.sum(axis=0) > 0
    shift = np.zeros(len(species))
    shift[present] = np.linalg.lstsq(counts[:, present], residual, rcond=None)[0]
    with torch.no_grad():
        model.readout.reference += torch.from_numpy(shift).to(model.readout.reference)
    return {z: float(e) for z, e in zip(species, shift)}


@dataclass(frozen=True)
class Normalizers:
    """Counts a batch's squared errors are divided by: structures, force and stress components.

    A process of a distributed run holds part of a global batch but divides by the global
    counts, so that the gradients summed over processes are those of the whole batch.
    """

    structures: int
    force_components: int
    stress_components: int
    molecule_components: int = 1

    @classmethod
    def of(cls, samples: list[Sample]) -> Normalizers:
        """The counts of ``samples`` (at least 1 each: an empty term contributes zero)."""
        atoms = sum(len(s.graph.numbers) for s in samples)
        stressed = sum(s.stress is not None for s in samples)
        molecules = sum(int(s.molecules.max()) + 1 for s in samples if s.molecules is not None)
        return cls(
            max(len(samples), 1), max(3 * atoms, 1), max(9 * stressed, 1), max(3 * molecules, 1)
        )


def loss_fn(
    model,
    graph,
    targets,
    config: TrainConfig,
    create_graph: bool,
    norm: Normalizers | None = None,
):
    """Weighted squared errors of energy per atom, forces, (masked) stress and molecular forces.

    With ``config.relative_force_weight`` > 0, each atom's force error relative to its teacher
    force is added (:func:`_relative_force_term`): a mean-angle term.

    The molecular term is the error of the net force on each molecule (the sum of its atoms'
    force errors), when ``config.molecular_force_weight`` > 0 and the batch has molecules.

    Args:
        model: a :class:`StudentModel`, or a (distributed) :class:`ConservativePotential`.
        graph: the batch.
        targets: from :func:`collate`.
        config: the loss weights.
        create_graph: keep the graph of the forces (training).
        norm: divide by these counts (default: this batch's own, i.e. means).
    """
    pot = ConservativePotential(model) if isinstance(model, StudentModel) else model
    stress = "stress" in targets
    out = pot(*graph.model_inputs(), graph.n_structures, True, stress, create_graph)
    if norm is None:
        stressed = int(targets["stress_mask"].sum()) if stress else 0
        n_mol = int(targets["molecule"].max()) + 1 if "molecule" in targets else 1
        norm = Normalizers(graph.n_structures, 3 * graph.n_atoms, max(9 * stressed, 1), 3 * n_mol)
    e_err = (out["energy"] - targets["energy"]) / targets["n_atoms"]
    loss = config.energy_weight * torch.sum(e_err**2) / norm.structures
    f_err = out["forces"] - targets["forces"]
    loss = loss + config.forces_weight * torch.sum(f_err**2) / norm.force_components
    if config.relative_force_weight > 0:
        loss = loss + config.relative_force_weight * _relative_force_term(
            f_err, targets["forces"], config.relative_force_floor, norm
        )
    if stress:
        m = targets["stress_mask"]
        s_err = out["stress"][m] - targets["stress"][m]
        loss = loss + config.stress_weight * torch.sum(s_err**2) / norm.stress_components
    if config.molecular_force_weight > 0 and "molecule" in targets:
        # one row per atom (molecule ids are below the atom count): sizing by the molecule
        # count would read mol.max() back from the device, a sync on every batch
        net = torch.zeros_like(f_err).index_add(0, targets["molecule"], f_err)
        loss = loss + config.molecular_force_weight * torch.sum(net**2) / norm.molecule_components
    return loss, out


def _relative_force_term(f_err, ref_forces, floor: float, norm: Normalizers) -> torch.Tensor:
    """Sum over atoms of ``|dF|^2 / (|F_ref|^2 + floor^2)``, per force component.

    For forces well above ``floor`` this is the squared sine of the angle error plus the
    squared relative magnitude error, so small forces count as much as large ones.
    """
    scale = torch.sum(ref_forces**2, dim=1) + floor**2
    return torch.sum(torch.sum(f_err**2, dim=1) / scale) / norm.force_components


def predict(
    model: StudentModel, samples: list[Sample], batch_size: int = 32, derivatives: bool = True
) -> dict[str, np.ndarray]:
    """Energies, forces and stresses (3x3; zeros without a cell) of ``samples``.

    Float64 evaluation on the model's device. ``derivatives=False`` gives the energies alone
    (``{"energy": ...}``), without the backward pass that forces and stress cost.
    """
    device = next(model.parameters()).device
    energies, forces, stresses = [], [], []
    for k in range(0, len(samples), batch_size):
        graph, _ = collate(samples[k : k + batch_size], torch.float64, device)
        if not derivatives:
            with torch.no_grad():
                out = ConservativePotential(model).evaluate(graph, forces=False)
            energies.append(out["energy"].cpu().numpy())
            continue
        with_stress = any(s.stress is not None for s in samples[k : k + batch_size])
        out = ConservativePotential(model).evaluate(graph, forces=True, stress=with_stress)
        energies.append(out["energy"].detach().cpu().numpy())
        forces.append(out["forces"].detach().cpu().numpy())
        stress = out["stress"] if with_stress else torch.zeros(graph.n_structures, 3, 3)
        stresses.append(stress.detach().cpu().numpy())
    if not derivatives:
        return {"energy": np.concatenate(energies)}
    return {
        "energy": np.concatenate(energies),
        "forces": np.concatenate(forces),
        "stress": np.concatenate(stresses),
    }


#: Evaluation splits reported molecule by molecule (held-out molecules).
BY_MOLECULE = ("test_molecule", HELDOUT_SPLIT)


def evaluate_samples(
    model: StudentModel, samples: list[Sample], groups: list[str] | None = None
) -> dict[str, Any]:
    """Fidelity report of ``model`` on labelled samples (see :mod:`ase_distill.metrics`).

    Samples with a teacher stress add ``stress_mae_gpa`` (all nine components). With
    ``groups`` (each sample's molecule), the report adds each molecule's metrics, the worst
    molecule's force R2 and the energy MAE once each molecule's constant offset is removed.
    """
    from ase import units

    pred = predict(_copy_double(model), samples)
    ref_forces = np.concatenate([s.forces for s in samples])
    ref_energy = np.array([s.energy for s in samples])
    n_atoms = np.array([len(s.graph.numbers) for s in samples])
    numbers = np.concatenate([s.graph.numbers for s in samples])
    report = fidelity_report(
        pred["forces"], ref_forces, numbers, pred["energy"], ref_energy, n_atoms
    )
    stressed = [k for k, s in enumerate(samples) if s.stress is not None]
    if stressed:
        ref = np.stack([samples[k].stress for k in stressed])
        err = np.abs(pred["stress"][stressed] - ref) / units.GPa
        report["stress_mae_gpa"] = float(err.mean())
        report["n_stress_frames"] = len(stressed)
    if groups is not None:
        report.update(_by_group(pred, ref_forces, ref_energy, n_atoms, groups))
    return report


def evaluate_splits(model: StudentModel, by_split: dict[str, list[Atoms]]) -> dict[str, Any]:
    """The card's metrics: :func:`evaluate_samples` on every evaluation split that has frames.

    Besides :data:`EVAL_SPLITS`, the project's target split: the held-out molecules' teacher
    MD frames at 300 and 600 K. Held-out molecules are also reported molecule by molecule.
    """
    sets = {s: by_split.get(s, []) for s in EVAL_SPLITS}
    sets[HELDOUT_SPLIT] = heldout_md(by_split.get("test_molecule", []))
    return {
        split: evaluate_samples(
            model,
            prepare(frames, model.cutoff, model.species),
            [f.info.get("seed", "") for f in frames] if split in BY_MOLECULE else None,
        )
        for split, frames in sets.items()
        if frames
    }


def save_with_metrics(
    model: StudentModel,
    card: dict[str, Any],
    out: str | os.PathLike,
    by_split: dict[str, list[Atoms]],
    key: str,
    record: dict[str, Any],
) -> dict[str, Any]:
    """Save a changed student at ``out`` with its card's metrics recomputed as training does.

    The card gets :func:`evaluate_splits` on ``by_split`` and ``record`` under
    ``card["training"][key]`` (how the student was changed), so that ``python -m
    training.ship`` can ship it; ``card`` itself is not modified. Returns the new card.
    """
    card = {**card, "metrics": evaluate_splits(model, by_split)}
    card["training"] = {**card.get("training", {}), key: record}
    save_checkpoint(model, out, card)
    return card


def _by_group(pred, ref_forces, ref_energy, n_atoms, groups: list[str]) -> dict[str, Any]:
    """Per-molecule force R2 / RMSE and energy MAE, with and without the molecule's offset."""
    from ase_distill.metrics import force_metrics

    atom_group = np.repeat(np.asarray(groups), n_atoms)
    per_atom_error = (pred["energy"] - ref_energy) / n_atoms * 1000  # meV/atom
    by_molecule, centred = {}, np.empty_like(per_atom_error)
    for name in sorted(set(groups)):
        frames = np.asarray(groups) == name
        forces = force_metrics(pred["forces"][atom_group == name], ref_forces[atom_group == name])
        offset = float(per_atom_error[frames].mean())
        centred[frames] = per_atom_error[frames] - offset
        by_molecule[name] = {
            "frames": int(frames.sum()),
            "force_r2": forces["force_r2"],
            "force_rmse": forces["force_rmse"],
            "force_angle_deg": forces["force_angle_deg"],
            "energy_mae_mev_per_atom": float(np.abs(per_atom_error[frames]).mean()),
            "energy_offset_mev_per_atom": offset,
        }
    return {
        "by_molecule": by_molecule,
        "worst_molecule_force_r2": min(m["force_r2"] for m in by_molecule.values()),
        "energy_mae_offset_removed_mev_per_atom": float(np.abs(centred).mean()),
    }


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
        p = next(like.parameters())
        m = StudentModel(like.config).to(p.device, p.dtype)
        m.load_state_dict(self.state)
        return m


def save_last_ema(run: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Save the EMA model of a run's last epoch (from ``RUN/last.pt``) as ``OUT.{pt,json}``.

    ``best.pt`` is the epoch of least validation ``select_metric``; a stage whose validation
    force RMSE is ruled by a few frames far above ``max_force`` (kept in validation, left out
    of training) picks an early epoch. At the end of a cosine schedule the last EMA model is
    the natural start for the next stage. The card holds no metrics (it cannot be shipped
    before a stage evaluates it); ``training.picked`` says which epoch it is.
    """
    from ase_distill.checkpoint import checkpoint_paths, load_checkpoint

    run = Path(run)
    best, card = load_checkpoint(run / "best")
    state = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    model = StudentModel(best.config)
    model.load_state_dict(state["ema"])
    picked = {"epoch": int(state["epoch"]), "rule": "the last epoch's EMA model", "run": str(run)}
    card = {k: v for k, v in card.items() if k != "metrics"}
    card["training"] = {**card.get("training", {}), "picked": picked}
    weights, _ = checkpoint_paths(out or run / "last_ema")
    save_checkpoint(model, weights, card)
    return weights


def hardware(device: str) -> str:
    """Where training ran, for the model card (GPU name or CPU and thread count)."""
    if torch.device(device).type == "cuda":
        return f"{torch.cuda.get_device_name(torch.device(device))}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    return f"{cpu} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"


def split_frames(
    frames: list[Atoms], max_force: float, validation_molecules: int = 0, pattern: str = "*"
) -> tuple[dict, dict[str, int]]:
    """Frames by split, with the ``max_force`` filter applied to training frames only.

    With ``validation_molecules`` the validation split is that many whole training molecules
    whose names match ``pattern`` (:func:`hold_out_molecules`). Returns the splits and, per
    evaluation split, how many frames exceed ``max_force`` (reported in the card, never dropped).
    """
    by_split: dict[str, list[Atoms]] = {}
    for k, f in enumerate(frames):
        f.info["frame_index"] = k
        by_split.setdefault(f.info.get("split", "train"), []).append(f)
    if validation_molecules:
        by_split = hold_out_molecules(by_split, validation_molecules, pattern)
    by_split["train"] = filter_frames(by_split.get("train", []), max_force)
    above = {}
    if max_force > 0:
        for split in EVAL_SPLITS:
            kept = filter_frames(by_split.get(split, []), max_force)
            above[split] = len(by_split.get(split, [])) - len(kept)
    return by_split, above


def hold_out_molecules(by_split: dict, count: int, pattern: str = "*") -> dict:
    """Make the validation split ``count`` whole training molecules instead of random frames.

    Why: a frame-level validation split holds frames of molecules the student trains on, so
    its energy error misses the per-molecule offsets that rule the energy error on unseen
    molecules (issue 11: across 14 tiny candidates, validation energy fell while held-out
    energy rose). The molecules are the ``count`` training seeds whose name matches the glob
    ``pattern`` with the least SHA-1 of their name, the same on every machine and resume (a
    pattern naming a new generation keeps them unseen by students of the earlier ones,
    which a run may start from); their training and validation frames become the
    validation split, and the other molecules' validation frames join training. Test splits
    are unchanged.

    Raises:
        TrainingError: frames without a ``seed`` name, or ``count`` leaves no training molecule.
    """
    train, val = by_split.get("train", []), by_split.get("validation", [])
    unnamed = [f for f in train + val if "seed" not in f.info]
    if unnamed:
        raise TrainingError(
            f"train.validation_molecules needs each frame's molecule (info['seed']); "
            f"{len(unnamed)} frames have none. Set train.validation_molecules: 0."
        )
    seeds = sorted({f.info["seed"] for f in train}, key=_name_hash)
    matching = [s for s in seeds if fnmatch.fnmatchcase(s, pattern)]
    if count > len(matching) or count >= len(seeds):
        raise TrainingError(
            f"train.validation_molecules={count} needs that many training molecules matching "
            f"{pattern!r} and at least one left to train on; {len(matching)} of {len(seeds)} "
            "match. Choose fewer, or another train.validation_molecule_pattern."
        )
    held = set(matching[:count])
    stays = [f for f in train + val if f.info["seed"] not in held]
    return {
        **by_split,
        "train": stays,
        "validation": [f for f in train + val if f.info["seed"] in held],
    }


def _name_hash(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()


def check_run_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to train into a folder holding a run unless resuming or told to overwrite."""
    taken = [name for name in RUN_FILES if (out / name).exists()]
    if resume and overwrite:
        raise TrainingError("Give either --resume or --overwrite, not both.")
    if taken and not (resume or overwrite):
        raise TrainingError(
            f"{out} already holds a training run ({', '.join(taken)}). Continue it with "
            "--resume, replace it with --overwrite, or choose another --output."
        )
    if overwrite:
        for name in taken:
            (out / name).unlink()


def check_resumable(saved: dict[str, Any], config: TrainConfig) -> None:
    """Refuse a resume whose config differs from the saved run in a key that matters."""
    current = to_dict(config)
    saved = {**to_dict(TrainConfig()), **saved}  # keys added since the run started: defaults
    changed = sorted(
        k
        for k in set(saved) | set(current)
        if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k)
    )
    if changed:
        diffs = "; ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise TrainingError(
            f"Cannot resume {config.output}: the config changed ({diffs}). Only "
            f"{', '.join(sorted(RESUMABLE_CHANGES))} may change on resume; train into a new "
            "--output (or --overwrite) for a different run."
        )


def init_distributed(device: torch.device) -> tuple[int, int, torch.device]:
    """``(rank, world_size, device)``; joins the process group when launched by torchrun.

    gloo on CPUs, nccl on GPUs (each process on ``cuda:LOCAL_RANK``). A plain run is rank 0
    of 1 and touches nothing.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, device
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def _save_state(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


class Trainer:
    """One training run: data, model and state, run epoch by epoch.

    Args:
        config: the run.
        resume: continue from ``OUTPUT/last.pt`` (the config must match, see
            :data:`RESUMABLE_CHANGES`).
        overwrite: replace a run already in ``OUTPUT``.
        progress: show progress bars.
    """

    def __init__(
        self,
        config: TrainConfig,
        resume: bool = False,
        overwrite: bool = False,
        progress: bool = True,
    ) -> None:
        self.config = config
        self.out = Path(config.output)
        self.rank, self.world, self.device = init_distributed(self._device(config.device))
        self.progress = progress and self.rank == 0
        if self.rank == 0:  # one process checks and writes the run folder
            check_run_folder(self.out, resume, overwrite)
            self.out.mkdir(parents=True, exist_ok=True)
        _barrier(self.world)
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        self.dtype = torch.float64 if config.dtype == "float64" else torch.float32
        self.arch = size_config(config.size, **config.architecture)
        if config.init_from:
            self.arch = _with_pair_table_of(self.arch, config.init_from)
        self.by_split, self.above_max_force = split_frames(
            read_dataset(config.dataset),
            config.max_force,
            config.validation_molecules,
            config.validation_molecule_pattern,
        )
        self.train_samples, self.val_samples = self._samples()
        self.gap_groups = self._gap_groups()
        self.epoch_gaps: list[float] = []  # the sampled ensemble gaps of this epoch (meV/atom)
        self.structure = self._structure_term()
        torch.manual_seed(config.seed)
        self.model = StudentModel(self.arch)
        reference = fit_energy_reference(self.train_samples, self.arch.species)
        self.model.set_energy_reference(*reference)
        if config.init_from and not resume:
            self._start_from(Path(config.init_from))
        self.model.to(self.device, self.dtype)
        self.potential = ConservativePotential(self.model)
        if self.world > 1:  # gradients summed over processes (see train_epoch)
            from torch.nn.parallel import DistributedDataParallel

            self.potential = DistributedDataParallel(self.potential)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.ema = EMA(self.model, config.ema_decay)
        self.epoch, self.best, self.bad_epochs = 0, math.inf, 0
        self.history: list[dict[str, Any]] = []
        self.seconds = 0.0
        if resume:
            self._restore()
        if self.rank == 0:
            atomic_write_json(self.out / "config.json", to_dict(config))

    @staticmethod
    def _device(name: str) -> torch.device:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(
                f"train.device is {name!r} but this torch has no CUDA device; use device: cpu."
            )
        return device

    def _samples(self) -> tuple[list[Sample], list[Sample]]:
        config, arch = self.config, self.arch
        if not self.by_split.get("train"):
            raise TrainingError(f"Dataset {config.dataset} has no training frames.")
        molecules = config.molecular_force_weight > 0
        train_samples = prepare(self.by_split["train"], arch.cutoff, arch.species, molecules)
        if self.by_split.get("validation"):
            frames = self.by_split["validation"]
            if 0 < config.max_validation_frames < len(frames):
                keep = np.random.default_rng(config.seed).permutation(len(frames))
                frames = [frames[k] for k in sorted(keep[: config.max_validation_frames])]
            val = prepare(frames, arch.cutoff, arch.species)
        elif config.select_on_train:
            val = train_samples[:50]
        else:
            raise TrainingError(
                f"Dataset {config.dataset} has no validation frames, so the best model would be "
                "chosen on training frames. Generate with validation_fraction > 0, or set "
                "train.select_on_train=true to accept selection on training frames."
            )
        return train_samples, val

    def _gap_groups(self) -> list[GapGroup]:
        """Boxes for the ensemble-gap term (none when its weight is 0)."""
        c = self.config
        if c.ensemble_gap_weight <= 0:
            return []
        if self.world > 1:
            raise ConfigError(
                "train.ensemble_gap_weight > 0 runs in one process only; set it to 0 for a "
                "distributed run, or train on one device."
            )
        frames = self.by_split["train"]
        return gap_groups(frames, c.ensemble_reference_kind, c.ensemble_student_kind)

    def _structure_term(self) -> StructureTerm | None:
        """The RDF-matching term (none when its weight is 0)."""
        if self.config.structure_weight <= 0:
            return None
        if self.world > 1:
            raise ConfigError(
                "train.structure_weight > 0 runs in one process only; set it to 0 for a "
                "distributed run, or train on one device."
            )
        return StructureTerm(
            self.config, self.out / "structure_chains.xyz", self.dtype, self.device
        )

    def _start_from(self, path: Path) -> None:
        """Weights (energy reference included) of a checkpoint of the same architecture."""
        from ase_distill.registry import resolve_student

        model, _ = resolve_student(path)
        if isinstance(model, StudentModel) and _shallower(model.config, self.arch):
            model = deepen(model, self.arch.interactions, seed=self.config.seed)
        if not isinstance(model, StudentModel) or model.config != self.arch:
            raise TrainingError(
                f"train.init_from {path} is not a student of this run's architecture "
                f"({self.arch}); give a checkpoint of the same size, species and cutoff "
                "(it may have fewer interactions: the new blocks then start as identity)."
            )
        self.model.load_state_dict(model.state_dict(), strict=True)
        if self.config.refit_reference:
            shift = refit_energy_reference(self.model, self.train_samples)
            if self.rank == 0:  # kept beside the run, so a resumed run's card still has it
                atomic_write_json(self.out / "reference_shift.json", shift)

    def _restore(self) -> None:
        last = self.out / "last.pt"
        if not last.is_file():
            raise TrainingError(f"Cannot resume: {last} does not exist; start without --resume.")
        saved_config = self.out / "config.json"
        if saved_config.is_file():
            check_resumable(json.loads(saved_config.read_text()), self.config)
        state = torch.load(last, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.ema.state = state["ema"]
        self.epoch, self.best, self.bad_epochs = state["epoch"], state["best"], state["bad_epochs"]
        self.seconds = state["seconds"]
        if "history" in state:
            self.history = json.loads(state["history"])
        else:  # runs written before the history moved into last.pt
            self.history = json.loads((self.out / "metrics.json").read_text())["epochs"]

    def lr_at(self, epoch: int) -> float:
        """Cosine schedule from ``lr`` to ``min_lr`` over ``epochs`` (or the time budget)."""
        c = self.config
        t = min(max(epoch / max(c.epochs, 1), self._budget_used()), 1.0)
        return c.min_lr + 0.5 * (c.lr - c.min_lr) * (1 + math.cos(math.pi * t))

    def _budget_used(self) -> float:
        """Fraction of ``time_budget_minutes`` spent (0 without a budget)."""
        budget = self.config.time_budget_minutes * 60.0
        return self.seconds / budget if budget > 0 else 0.0

    def _batches(self, epoch: int) -> list[list[int]]:
        c = self.config
        gen = torch.Generator().manual_seed(c.seed * 100_003 + epoch)
        order = torch.randperm(len(self.train_samples), generator=gen).tolist()
        batches = [order[k : k + c.batch_size] for k in range(0, len(order), c.batch_size)]
        return batches[: c.max_steps_per_epoch] if c.max_steps_per_epoch else batches

    def _check_finite(self, loss: torch.Tensor, grad_norm: torch.Tensor, batch: list[Sample]):
        if bool(torch.isfinite(loss)) and bool(torch.isfinite(grad_norm)):
            return
        what = "loss" if not bool(torch.isfinite(loss)) else "gradient"
        frames = ", ".join(f"{s.index} ({s.origin})" for s in batch[:20])
        raise TrainingError(
            f"Non-finite {what} in epoch {self.epoch + 1}; the batch held dataset frames "
            f"{frames}. Check these frames' labels, lower the learning rate, or set "
            "train.max_force to drop extreme frames. Nothing of this epoch was saved."
        )

    def train_epoch(self) -> float:
        """One pass over the training batches; returns the mean loss."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.epoch)
        self.model.train()
        total, batches = 0.0, self._batches(self.epoch)
        gap_rng = np.random.default_rng([self.config.seed, self.epoch])  # resumes repeat it
        self.epoch_gaps = []
        structure_rng = np.random.default_rng([self.config.seed, self.epoch, 1])  # its own draws
        if self.structure is not None:  # the student's own NVT, with this epoch's weights
            self.structure.resample(self.model, self.epoch, self.progress)
        bar = tqdm(
            batches,
            desc=f"epoch {self.epoch + 1}/{self.config.epochs}",
            disable=not self.progress,
            leave=False,
        )
        for idx in bar:
            batch = [self.train_samples[i] for i in idx]
            loss = self._batch_loss(batch)
            if self.gap_groups:
                loss = loss + self._gap_term(gap_rng)
            if self.structure is not None:
                term = self.structure.step(self.model, structure_rng)
                loss = loss if term is None else loss + term
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            self._check_finite(loss.detach(), norm, batch)
            self.optimizer.step()
            self.ema.update(self.model)
            total += float(loss.detach())
            bar.set_postfix(loss=f"{float(loss.detach()):.4g}")
        return total / max(len(batches), 1)

    def _gap_term(self, rng: np.random.Generator) -> torch.Tensor:
        """The weighted ensemble-gap term of one step (its mean gap kept for the epoch row)."""
        c = self.config
        term, gap = ensemble_gap_loss(
            self.model,
            self.train_samples,
            self.gap_groups,
            c.ensemble_gap_frames,
            rng,
            self.dtype,
            self.device,
        )
        self.epoch_gaps.append(gap)
        return c.ensemble_gap_weight * term

    def _batch_loss(self, batch: list[Sample]) -> torch.Tensor:
        """This process's share of the loss of a global batch.

        Process ``r`` of ``w`` takes samples ``r, r + w, ...`` and divides by the global
        batch's counts; DDP averages gradients over processes, so the loss is scaled by ``w``
        and the update equals a single process's on the whole batch. A process left without
        a sample runs one with zero weight (every process must join each gradient sum).
        """
        local = batch[self.rank :: self.world]
        weight = float(self.world)
        if not local:
            local, weight = batch[:1], 0.0
        graph, targets = collate(local, self.dtype, self.device)
        model = self.potential if self.world > 1 else self.model
        loss, _ = loss_fn(model, graph, targets, self.config, True, Normalizers.of(batch))
        return loss * weight if self.world > 1 else loss

    def evaluate(self) -> tuple[StudentModel, dict[str, Any]]:
        """The EMA model and its validation metrics."""
        ema_model = self.ema.model(self.model)
        return ema_model, evaluate_samples(ema_model, self.val_samples)

    def checkpoint(self, ema_model: StudentModel, val: dict[str, Any]) -> None:
        """Keep the best EMA model, then write ``last.pt`` (history inside), ``metrics.json``."""
        score = val[self.config.select_metric]
        improved = score < self.best
        if improved:
            self.best, self.bad_epochs = score, 0
        else:
            self.bad_epochs += 1
        if self.rank != 0:  # every process keeps the same state; one writes it
            return
        if improved:
            save_checkpoint(ema_model, self.out / "best", {"training": {"epoch": self.epoch}})
        if self.config.keep_epochs:  # e.g. a structure stage, judged later by MD
            meta = {"training": {"epoch": self.epoch}}
            save_checkpoint(ema_model, self.out / f"epoch_{self.epoch:03d}", meta)
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "ema": self.ema.state,
            "epoch": self.epoch,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
            "seconds": self.seconds,
            "history": json.dumps(self.history),  # a string: weights_only loads it
        }
        _save_state(self.out / "last.pt", state)
        atomic_write_json(self.out / "metrics.json", {"epochs": self.history})

    def run(self, stop_after_epochs: int | None = None) -> dict[str, Any]:
        """Train to ``epochs`` (or early stop); returns the summary of :meth:`finish`."""
        epochs_run, stopped_early = 0, False
        while self.epoch < self.config.epochs:
            if self.bad_epochs >= self.config.patience:
                stopped_early = True
                break
            if self._budget_used() >= 1.0:
                break
            if stop_after_epochs is not None and epochs_run >= stop_after_epochs:
                return {"complete": False, "epoch": self.epoch}
            t0 = time.time()
            train_loss = self.train_epoch()
            ema_model, val = self.evaluate()
            self.seconds += time.time() - t0
            self.epoch += 1
            self.history.append(self._row(train_loss, val))
            self.checkpoint(ema_model, val)
            _barrier(self.world)
            epochs_run += 1
            if self.progress:
                tqdm.write(self._line(self.history[-1]))
        return self.finish(stopped_early)

    def _row(self, train_loss: float, val: dict[str, Any]) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": train_loss,
            "val_force_rmse": val["force_rmse"],
            "val_force_r2": val["force_r2"],
            "val_force_angle_deg": val["force_angle_deg"],
            "val_energy_mae_mev_per_atom": val["energy_mae_mev_per_atom"],
            "seconds": round(self.seconds, 1),
            **self._gap_row(),
            **(self.structure.row() if self.structure is not None else {}),
        }

    def _gap_row(self) -> dict[str, float]:
        """The epoch's mean sampled ensemble gap (training frames), when the term is on."""
        gaps = self.epoch_gaps
        return {"train_ensemble_gap_mev_per_atom": float(np.mean(gaps))} if gaps else {}

    @staticmethod
    def _line(row: dict[str, Any]) -> str:
        return (
            f"epoch {row['epoch']}: loss {row['train_loss']:.4g}  val F-RMSE "
            f"{row['val_force_rmse']:.4f} eV/A  R2 {row['val_force_r2']:.4f}  "
            f"angle {row['val_force_angle_deg']:.2f} deg  "
            f"E-MAE {row['val_energy_mae_mev_per_atom']:.2f} meV/atom"
            + (
                f"  ensemble gap {row['train_ensemble_gap_mev_per_atom']:+.2f} meV/atom"
                if "train_ensemble_gap_mev_per_atom" in row
                else ""
            )
            + (
                f"  O-O shell sampled {row['structure_sampled_oo_shell']:.2f} -> reweighted "
                f"{row.get('structure_reweighted_oo_shell', float('nan')):.2f} (teacher "
                f"{row['structure_target_oo_shell']:.2f})"
                if "structure_sampled_oo_shell" in row
                else ""
            )
        )

    def finish(self, stopped_early: bool) -> dict[str, Any]:
        """Evaluate the best model on every evaluation split and write its model card."""
        from ase_distill.checkpoint import load_checkpoint

        if self.rank != 0:
            return {"complete": True, "rank": self.rank}
        best, _ = load_checkpoint(self.out / "best")
        metrics = evaluate_splits(best, self.by_split)
        card = self._card(metrics, stopped_early)
        save_checkpoint(best, self.out / "best", card)
        summary = {"complete": True, "best": str(self.out / "best.pt"), "metrics": metrics}
        atomic_write_json(self.out / "summary.json", summary)
        return summary

    def _card(self, metrics: dict[str, Any], stopped_early: bool) -> dict[str, Any]:
        dataset_dir = Path(self.config.dataset).parent
        data_summary = {}
        if (dataset_dir / "summary.json").is_file():
            data_summary = json.loads((dataset_dir / "summary.json").read_text())
        training = {
            "config": to_dict(self.config),
            "epochs_run": len(self.history),
            "stopped_early": stopped_early,
            "seconds": round(self.seconds, 1),
            "hardware": hardware(self.config.device),
            "processes": self.world,
            "init_from": self.config.init_from or None,
            "reference_shift_ev": _read_json(self.out / "reference_shift.json"),
        }
        # this stage and the ones before it, as far back as their cards reach
        training["stages"] = training_stages({"training": training})
        training["stages_seconds"] = total_seconds(training["stages"])
        return {
            "teacher": data_summary.get("teacher", {"name": "unknown"}),
            "training_data": {
                "dataset": str(self.config.dataset),
                "frames": {k: len(v) for k, v in self.by_split.items()},
                "eval_frames_above_max_force": self.above_max_force,
                "model_selection": "validation" if self.by_split.get("validation") else "train",
                "molecules": data_summary.get("molecules"),
                "holdout_molecules": data_summary.get("holdout_molecules"),
                "generation": (data_summary.get("config") or {}),
                # molecules and frames by category, functional group and ring system
                "by_library": data_summary.get("by_library"),
            },
            "training": training,
            "metrics": metrics,
        }


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def train(
    config: TrainConfig,
    resume: bool = False,
    progress: bool = True,
    stop_after_epochs: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train (or resume) a student; returns the final summary (also in ``summary.json``).

    Args:
        config: the run.
        resume: continue from ``OUTPUT/last.pt``.
        progress: show progress bars.
        stop_after_epochs: stop (as if killed) after this many epochs in this call; for tests.
        overwrite: replace a run already in ``OUTPUT`` (refused otherwise).

    Raises:
        TrainingError: a taken output folder, a refused resume, non-finite loss or gradients.
    """
    trainer = Trainer(config, resume=resume, overwrite=overwrite, progress=progress)
    return trainer.run(stop_after_epochs)
