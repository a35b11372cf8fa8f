"""The structure term (training/structure_matching.py): RDFs, reweighting, gradient, training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.calculators.emt import EMT
from ase.io import read, write

from ase_distill.model import StudentModel, size_config
from md_validation.metrics import rdf
from training.config import TrainConfig
from training.generate import ENERGY_KEY, FORCES_KEY
from training.structure_matching import (
    ReweightedEnsemble,
    StructureMatchingError,
    StructureTerm,
    common_grid,
    sample_chain,
    structure_loss,
    target_rdfs,
)
from training.train import train

BOX = Path(__file__).resolve().parents[1] / "reports" / "water" / "box32_start.xyz"
ARCH = {"species": [1, 8], "cutoff": 3.5, "features": 8, "interactions": 1, "radial_basis": 6}


def _frames(n: int = 6, seed: int = 0) -> list:
    """The committed 96-atom water box, rattled: distinct frames of one state point."""
    rng = np.random.default_rng(seed)
    start = read(BOX)
    out = []
    for _ in range(n):
        atoms = start.copy()
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        out.append(atoms)
    return out


def _model(seed: int = 0) -> StudentModel:
    torch.manual_seed(seed)
    return StudentModel(size_config("ultra-tiny", **ARCH)).double()


def test_frame_rdfs_match_the_validations_mdanalysis_rdf():
    """The term and ``ase-distill validate`` must see the same g(r), or it fits the wrong one."""
    frames = _frames(2)
    grid = common_grid(frames)
    ours = target_rdfs(frames, grid)
    for k, pair in enumerate([(8, 8), (8, 1), (1, 1)]):
        _, theirs = rdf(frames, r_max=grid.r_max, bins=grid.bins, pair=pair)
        # float32 coordinates inside MDAnalysis move a few distances across bin edges
        assert np.abs(ours[k] - theirs).sum() / np.abs(theirs).sum() < 1e-3


def test_weights_are_uniform_at_the_sampling_parameters():
    frames, model = _frames(), _model()
    grid = common_grid(frames)
    ensemble = ReweightedEnsemble(model, frames, grid, 300.0, torch.float64, "cpu")
    target = torch.zeros(3, grid.bins, dtype=torch.float64)
    loss, ess, _ = structure_loss(model, ensemble, target, np.arange(len(frames)))
    assert ess == pytest.approx(1.0, abs=1e-12)
    plain = ensemble.rdfs.mean(0)
    assert float(loss.detach()) == pytest.approx(float(torch.mean(plain**2)), rel=1e-12)


def test_gradient_matches_finite_differences():
    """The loss depends on the parameters only through the weights: check d loss / d theta."""
    frames, model = _frames(), _model()
    grid = common_grid(frames)
    ensemble = ReweightedEnsemble(model, frames, grid, 300.0, torch.float64, "cpu")
    target = ensemble.rdfs[0] * 0.9  # any target away from the sampled mean
    indices = np.arange(len(frames))
    # the sampled energies are the reference; move the model away so weights differ
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1e-3 * torch.randn_like(p))
    loss, _, _ = structure_loss(model, ensemble, target, indices)
    loss.backward()
    param = next(p for p in model.parameters() if p.grad is not None and p.grad.abs().max() > 0)
    k = int(torch.argmax(param.grad.abs()))
    eps = 1e-6  # float64, central differences: error ~eps^2 (tolerance below is generous)
    values = []
    for sign in (1, -1):
        with torch.no_grad():
            param.view(-1)[k] += sign * eps
            values.append(float(structure_loss(model, ensemble, target, indices)[0]))
            param.view(-1)[k] -= sign * eps
    numeric = (values[0] - values[1]) / (2 * eps)
    assert float(param.grad.view(-1)[k]) == pytest.approx(numeric, rel=1e-4)


def test_a_gradient_step_moves_the_reweighted_rdf_towards_the_target():
    frames, model = _frames(8), _model(1)
    grid = common_grid(frames)
    ensemble = ReweightedEnsemble(model, frames, grid, 300.0, torch.float64, "cpu")
    target = ensemble.rdfs[:4].mean(0)  # the structure of half the frames
    indices = np.arange(len(frames))
    loss, _, _ = structure_loss(model, ensemble, target, indices)
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    squared = sum(float((g**2).sum()) for g in grads)
    # a step sized to lower the loss by 10 % to first order (beta dE of a random model is
    # large, so a fixed learning rate would overshoot); the drop must show
    lr = 0.1 * float(loss.detach()) / squared
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= lr * p.grad
    after, ess, _ = structure_loss(model, ensemble, target, indices)
    assert float(after.detach()) < 0.95 * float(loss.detach()) and ess < 1.0


def _labelled(frames):
    """EMT labels (a cheap stand-in teacher; the term does not use labels)."""
    out = []
    for k, atoms in enumerate(frames):
        atoms = atoms.copy()
        atoms.calc = EMT()
        atoms.info[ENERGY_KEY] = atoms.get_potential_energy()
        atoms.arrays[FORCES_KEY] = atoms.get_forces()
        atoms.calc = None
        atoms.info.update({"seed": "box", "split": "validation" if k == 0 else "train"})
        out.append(atoms)
    return out


def _config(tmp_path, **kw) -> TrainConfig:
    frames = _frames(4)
    write(tmp_path / "dataset.xyz", _labelled(frames), format="extxyz")
    write(tmp_path / "teacher.xyz", frames, format="extxyz")
    write(tmp_path / "start.xyz", frames[0], format="extxyz")
    base = dict(
        dataset=str(tmp_path / "dataset.xyz"), output=str(tmp_path / "run"), size="ultra-tiny",
        architecture=ARCH, epochs=2, batch_size=2, structure_weight=1.0,
        structure_target=str(tmp_path / "teacher.xyz"),
        structure_boxes=f"{tmp_path / 'start.xyz'}+{tmp_path / 'start.xyz'}",
        structure_equilibrate_ps=0.0025, structure_sample_ps=0.005, structure_interval=2,
        structure_frames=4,
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def test_training_samples_each_epoch_and_keeps_the_chains(tmp_path):
    config = _config(tmp_path)
    train(config, progress=False)
    rows = json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"]
    assert len(rows) == 2
    for row in rows:
        assert np.isfinite(row["structure_sampled_oo_shell"]) and row["structure_steps"] >= 1
        assert 0 < row["structure_ess"] <= 1
    chains = read(tmp_path / "run" / "structure_chains.xyz", ":")
    assert len(chains) == 2 and chains[0].get_momenta().any()  # one per box, resumable
    term = StructureTerm(config, tmp_path / "run" / "structure_chains.xyz", torch.float32, "cpu")
    assert np.allclose(term.starts[1].positions, chains[1].positions)


def test_structure_weight_without_target_is_refused(tmp_path):
    config = _config(tmp_path, structure_target="")
    with pytest.raises(StructureMatchingError, match="structure_target"):
        train(config, progress=False)
    config = _config(
        tmp_path, structure_boxes=str(tmp_path / "missing.xyz"), output=str(tmp_path / "r2")
    )
    with pytest.raises(StructureMatchingError, match="does not exist"):
        train(config, progress=False)
    assert issubclass(StructureMatchingError, ValueError)


def test_local_estimator_has_reweightings_gradient_at_the_sampling_point():
    """Both estimators agree where the frames were sampled; away from it local stays uniform."""
    frames, model = _frames(), _model(2)
    grid = common_grid(frames)
    ensemble = ReweightedEnsemble(model, frames, grid, 300.0, torch.float64, "cpu")
    target = ensemble.rdfs[0] * 0.9
    indices = np.arange(len(frames))
    grads = []
    for local in (False, True):
        model.zero_grad()
        structure_loss(model, ensemble, target, indices, local)[0].backward()
        grads.append(torch.cat([p.grad.ravel() for p in model.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], rtol=1e-9, atol=1e-14)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1e-2 * torch.randn_like(p))
    loss, ess, _ = structure_loss(model, ensemble, target, indices, local=True)
    assert float(loss.detach()) == pytest.approx(
        float(torch.mean((ensemble.rdfs.mean(0) - target) ** 2))
    )
    assert ess < 1.0  # the drift since sampling is still reported


def test_intermolecular_rdfs_drop_the_bonds_and_keep_the_rest():
    frames = _frames(1)
    grid = common_grid(frames)
    x = 0.5 * (grid.edges[1:] + grid.edges[:-1])
    every, between = target_rdfs(frames, grid), target_rdfs(frames, grid, intermolecular=True)
    assert every[1][x < 1.3].max() > 10 and between[1][x < 1.3].max() == 0  # O-H bonds gone
    assert between[0] == pytest.approx(every[0])  # no O-O pair is bonded
    assert np.all(between <= every + 1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run on a GPU)")
def test_chains_run_on_the_training_device():
    # float32 on two devices: a few steps agree far below an MD step's motion (~1e-3 A)
    model, start = _model(), _frames(1)[0]
    args = (start, 300.0, 0, 6, 2)
    on_cpu = sample_chain(model, *args, seed=1)
    on_gpu = sample_chain(model.cuda(), *args, seed=1, device="cuda")
    assert next(model.parameters()).device.type == "cuda"  # the caller's model is not moved
    for a, b in zip(on_cpu, on_gpu, strict=True):
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-4)
