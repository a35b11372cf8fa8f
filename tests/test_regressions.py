"""Regression tests of the foundations issue: each failed on the main branch before its fix.

Numbers in the names follow the issue's list of defects; ``error_*`` tests are its unhelpful
errors, now messages that say what is wrong and what to do.
"""

import json
import math

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.cluster import Icosahedron
from ase.io import write

from ase_distill import DistilledCalculator, StudentModel, save_checkpoint, size_config
from ase_distill.checkpoint import CheckpointError, atomic_write_json, checkpoint_paths
from ase_distill.testing import random_crystal, random_molecule, randomize_readout
from training.config import ConfigError, GenerateConfig, TrainConfig, load_config
from training.generate import ENERGY_KEY, FORCES_KEY, STRESS_KEY

CU = {"species": [29], "cutoff": 4.0, "features": 8, "interactions": 2, "radial_basis": 4}


def _student(size="ultra-tiny", **arch):
    torch.manual_seed(0)
    return randomize_readout(StudentModel(size_config(size, **arch)))


def _emt_dataset(path, n=24, splits=("train", "validation"), max_force_frame=False):
    """A small labelled Cu dataset (EMT), alternating splits; one periodic frame with stress."""
    rng = np.random.default_rng(0)
    frames = []
    for k in range(n):
        if k % 6 == 5:
            atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
            atoms.rattle(0.05, seed=k)
        else:
            atoms = Icosahedron("Cu", 2, latticeconstant=3.6)
            atoms.positions += rng.normal(scale=0.08, size=atoms.positions.shape)
        atoms.calc = EMT()
        labelled = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        labelled.info[ENERGY_KEY] = atoms.get_potential_energy()
        labelled.arrays[FORCES_KEY] = atoms.get_forces()
        if atoms.pbc.all():
            labelled.info[STRESS_KEY] = atoms.get_stress()
        labelled.info["split"] = splits[k % len(splits)]
        labelled.info["seed"] = "cu"
        frames.append(labelled)
    if max_force_frame:
        frames[1].arrays[FORCES_KEY] = frames[1].arrays[FORCES_KEY] * 1000  # a validation frame
    write(path, frames, format="extxyz")
    return path


def _train_config(tmp_path, dataset, out="run", **kw):
    base = dict(
        dataset=str(dataset),
        output=str(tmp_path / out),
        size="ultra-tiny",
        architecture=CU,
        epochs=2,
        batch_size=6,
        threads=1,
        stress_weight=1.0,
    )
    return TrainConfig(**{**base, **kw})


# --- 1: mixed periodic / molecule batches ------------------------------------------------------
def test_1_mixed_batch_has_finite_gradients(tmp_path):
    from training.train import collate, loss_fn, prepare
    from training.train import read_dataset as read

    data = read(_emt_dataset(tmp_path / "d.xyz", n=6))
    model = StudentModel(size_config("ultra-tiny", **CU))
    samples = prepare(data, model.cutoff, model.species)
    assert any(s.stress is not None for s in samples) and any(s.stress is None for s in samples)
    graph, targets = collate(samples, torch.float32)
    loss, _ = loss_fn(model, graph, targets, TrainConfig(stress_weight=1.0), create_graph=True)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_1_non_finite_loss_stops_training_naming_frames(tmp_path, monkeypatch):
    import training.train as T

    dataset = _emt_dataset(tmp_path / "d.xyz")
    real = T.loss_fn

    def nan_loss(*args, **kwargs):
        loss, out = real(*args, **kwargs)
        return loss * float("nan"), out

    monkeypatch.setattr(T, "loss_fn", nan_loss)
    with pytest.raises(T.TrainingError, match=r"Non-finite loss.*dataset frames \d+ \(cu"):
        T.train(_train_config(tmp_path, dataset), progress=False)


def test_1_json_never_holds_bare_nan(tmp_path):
    atomic_write_json(tmp_path / "m.json", {"a": float("nan"), "b": [1.0, float("inf")]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": None, "b": [1.0, None]}


# --- 2: a finished run is not overwritten silently ---------------------------------------------
def test_2_train_refuses_a_finished_run(tmp_path):
    from training.train import TrainingError, train

    dataset = _emt_dataset(tmp_path / "d.xyz")
    config = _train_config(tmp_path, dataset, epochs=1)
    train(config, progress=False)
    best = (tmp_path / "run" / "best.pt").read_bytes()
    with pytest.raises(TrainingError, match="already holds a training run.*--resume.*--overwrite"):
        train(config, progress=False)
    assert (tmp_path / "run" / "best.pt").read_bytes() == best
    train(config, progress=False, overwrite=True)


# --- 3: checkpoint names with dots -------------------------------------------------------------
def test_3_suffix_is_appended_not_substituted(tmp_path):
    a, b = _student(), _student("tiny")
    save_checkpoint(a, tmp_path / "tiny_cutoff4.5")
    save_checkpoint(b, tmp_path / "tiny_cutoff4.0")
    assert (tmp_path / "tiny_cutoff4.5.pt").is_file() and (tmp_path / "tiny_cutoff4.0.pt").is_file()
    assert checkpoint_paths(tmp_path / "x4.5.pt")[1].name == "x4.5.json"
    calc = DistilledCalculator.from_checkpoint(tmp_path / "tiny_cutoff4.5")
    assert calc.model.features == a.features


# --- 4: the integrity hash covers the architecture ---------------------------------------------
def test_4_edited_architecture_is_refused(tmp_path):
    save_checkpoint(_student(), tmp_path / "m")
    card = json.loads((tmp_path / "m.json").read_text())
    card["architecture"]["cutoff"] = 3.0
    (tmp_path / "m.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="architecture were modified"):
        DistilledCalculator.from_checkpoint(tmp_path / "m")


def test_4_format_1_cards_load_with_a_warning(tmp_path):
    from ase_distill.checkpoint import sha256_bytes

    save_checkpoint(_student(), tmp_path / "m")
    card = json.loads((tmp_path / "m.json").read_text())
    card["format"] = "ase-distill-checkpoint/1"
    card["sha256"] = sha256_bytes((tmp_path / "m.pt").read_bytes())
    (tmp_path / "m.json").write_text(json.dumps(card))
    with pytest.warns(UserWarning, match="architecture is unverified"):
        DistilledCalculator.from_checkpoint(tmp_path / "m")


# --- 5: unknown atomic numbers in exported ONNX ------------------------------------------------
def test_5_onnx_unknown_element_fails_inside_the_graph(tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from ase_distill.export import ONNX_INPUTS, export_onnx
    from ase_distill.graph import atoms_to_graph

    model = _student()
    path = export_onnx(model, tmp_path / "m.onnx", {"name": "t"}, torch.float64)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    graph = atoms_to_graph(molecule("H2O"), model.cutoff)  # no species check: raw inputs
    feeds = {name: getattr(graph, name).numpy() for name in ONNX_INPUTS}
    session.run(None, feeds)  # known elements run
    feeds["numbers"] = np.array([17, 1, 1])  # Cl: unknown to the student
    with pytest.raises(Exception, match="(?i)out of bounds|invalid|index"):
        session.run(None, feeds)


def test_5_torch_unknown_element_raises_in_the_model():
    model = _student()
    with pytest.raises(IndexError):
        model.embedding(torch.tensor([17]))


# --- 6: config values are validated when loaded ------------------------------------------------
@pytest.mark.parametrize(
    "override, key",
    [
        ("generate.md.temperatures=[-300]", "generate.md.temperatures"),
        ("generate.md.steps=-1", "generate.md.steps"),
        ("generate.md.timestep_fs=0", "generate.md.timestep_fs"),
        ("generate.validation_fraction=1.0", "generate.validation_fraction"),
        ("train.batch_size=0", "train.batch_size"),
        ("train.epochs=0", "train.epochs"),
        ("train.epochs=ten", "train.epochs"),
        ("generate.seeds=H2O", "generate.seeds"),
    ],
)
def test_6_config_values_checked_naming_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_6_negative_temperature_fails_generate_cli(tmp_path, capsys):
    from training.cli import main

    rc = main(["generate", "--output", str(tmp_path), "--set", "generate.md.temperatures=[-300]"])
    assert rc == 2 and "generate.md.temperatures" in capsys.readouterr().err
    assert not (tmp_path / "dataset.xyz").exists()


def test_6_teacher_refuses_non_finite_positions():
    from training.teachers import TeacherError, make_teacher

    atoms = molecule("H2O")
    atoms.positions[0, 0] = np.nan
    with pytest.raises(TeacherError, match="NaN or infinite positions"):
        make_teacher("emt").label(atoms)


def test_6_python_api_checks_too():
    with pytest.raises(ConfigError, match="train.batch_size"):
        TrainConfig(batch_size=0)
    assert GenerateConfig().md.temperatures == [300.0, 600.0]


# --- 7: a teacher failing on relabelled frames is recorded, not fatal ---------------------------
class _RelabelFails(EMT):
    """A teacher that labels nothing (SCF never converges)."""

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        raise RuntimeError("SCF did not converge")


def test_7_relabel_failure_keeps_metrics_and_report(tmp_path):
    from md_validation.suite import ValidationSettings, validate

    cu = Icosahedron("Cu", 2, latticeconstant=3.6)
    settings = ValidationSettings(nve_ps=0.02, nvt_ps=0.0, timestep_fs=1.0, teacher_md=False)
    m = validate(cu, EMT(), _RelabelFails(), settings, tmp_path, "s", "t", "cu13", False)
    assert m["status"] == "complete"
    assert m["force_fidelity"]["frames_relabelled"] == 0
    assert "SCF" in m["force_fidelity"]["relabel_failures"][0]["error"]
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "complete"
    assert "could not be relabelled" in (tmp_path / "report.md").read_text()


# --- 8: evaluation sets are never filtered; no silent selection on training frames ---------------
def test_8_max_force_filters_training_frames_only(tmp_path):
    from training.train import train

    dataset = _emt_dataset(tmp_path / "d.xyz", max_force_frame=True)
    summary = train(_train_config(tmp_path, dataset, epochs=1, max_force=30.0), progress=False)
    card = json.loads((tmp_path / "run" / "best.json").read_text())
    assert card["training_data"]["eval_frames_above_max_force"]["validation"] == 1
    assert card["training_data"]["frames"]["validation"] == 12  # nothing dropped
    assert summary["metrics"]["validation"]["n_structures"] == 12
    assert summary["metrics"]["validation"]["stress_mae_gpa"] >= 0  # the periodic frames


def test_8_no_validation_split_is_an_error_unless_asked(tmp_path):
    from training.train import TrainingError, train

    dataset = _emt_dataset(tmp_path / "d.xyz", splits=("train",))
    with pytest.raises(TrainingError, match="no validation frames.*select_on_train"):
        train(_train_config(tmp_path, dataset, epochs=1), progress=False)
    train(_train_config(tmp_path, dataset, "b", epochs=1, select_on_train=True), progress=False)
    card = json.loads((tmp_path / "b" / "best.json").read_text())
    assert card["training_data"]["model_selection"] == "train"


# --- 9: checks never mutate the caller's model --------------------------------------------------
def test_9_evaluate_and_checks_leave_the_model_alone():
    from ase_distill import testing

    model = _student().float()
    model.train()
    before = testing.model_fingerprint(model)
    testing.evaluate(model, random_molecule(model, 4))
    testing.run_all_checks(model)
    testing.check_model_unchanged(before, model)
    assert next(model.parameters()).dtype == torch.float32 and model.training


def test_9_unchanged_check_can_fail():
    from ase_distill import testing

    model = _student().float()
    before = testing.model_fingerprint(model)
    model.double()
    with pytest.raises(AssertionError, match="dtype"):
        testing.check_model_unchanged(before, model)


# --- unhelpful errors, now clear -----------------------------------------------------------------
def test_error_cuda_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="no CUDA device.*device='cpu'"):
        DistilledCalculator(_student(), device="cuda")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["architecture"].update(species=["H", "C"]), "list of atomic numbers"),
        (lambda c: c["architecture"].update(species=[1, 300]), "invalid architecture"),
        (lambda c: c["architecture"].update(features="big"), "invalid architecture"),
        (lambda c: c.update(architecture=[1, 2]), "must be a mapping"),
    ],
)
def test_error_bad_card_types(tmp_path, edit, message):
    save_checkpoint(_student(), tmp_path / "m")
    card = json.loads((tmp_path / "m.json").read_text())
    edit(card)
    (tmp_path / "m.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=message):
        DistilledCalculator.from_checkpoint(tmp_path / "m")


def test_error_run_folder_to_from_checkpoint(tmp_path):
    save_checkpoint(_student(), tmp_path / "best")
    with pytest.raises(CheckpointError, match="is a folder.*training run.*best.pt"):
        DistilledCalculator.from_checkpoint(tmp_path)


def test_error_truncated_torchscript(tmp_path):
    from ase_distill.export import export_torchscript

    path = export_torchscript(_student(), tmp_path / "m.ts", {"name": "m"})
    DistilledCalculator.from_checkpoint(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable TorchScript file"):
        DistilledCalculator.from_checkpoint(path)


def test_error_export_to_unwritable_path_fails_before_tracing(tmp_path, monkeypatch):
    from ase_distill import export

    monkeypatch.setattr(torch.jit, "script", lambda *a, **k: pytest.fail("traced first"))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="Cannot write the export"):
        export.export_torchscript(_student(), blocker / "sub" / "m.ts", {})


def test_error_onnx_calculator_given_torchscript(tmp_path):
    pytest.importorskip("onnxruntime")
    from ase_distill.export import OnnxCalculator

    (tmp_path / "m.ts").write_bytes(b"x")
    with pytest.raises(ValueError, match="not an ONNX model.*from_checkpoint"):
        OnnxCalculator(tmp_path / "m.ts")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--timestep", "0"], "--timestep must be > 0"),
        (["--nve-ps", "-1"], "--nve-ps must be >= 0"),
        (["--relabel-every", "0"], "--relabel-every must be >= 1"),
        (["--npt-only"], "--npt-only needs --npt-structure"),
        (["--teacher-device", "cuda"], "--teacher-device applies to torch teachers"),
    ],
)
def test_error_validate_settings(args, message, capsys):
    from training.cli import main

    assert main(["validate", "--quiet", *args]) == 2
    assert message in capsys.readouterr().err


def test_error_resume_with_changed_config(tmp_path):
    from training.train import TrainingError, train

    dataset = _emt_dataset(tmp_path / "d.xyz")
    train(_train_config(tmp_path, dataset, epochs=1), progress=False)
    with pytest.raises(TrainingError, match="config changed.*lr: 0.001 -> 0.01"):
        train(_train_config(tmp_path, dataset, epochs=2, lr=0.01), resume=True, progress=False)
    changed = {**CU, "features": 12}
    with pytest.raises(TrainingError, match="architecture"):
        train(_train_config(tmp_path, dataset, architecture=changed), resume=True, progress=False)
    train(_train_config(tmp_path, dataset, epochs=2), resume=True, progress=False)  # epochs: ok


def test_error_history_survives_a_kill_before_metrics_json(tmp_path):
    from training.train import train

    dataset = _emt_dataset(tmp_path / "d.xyz")
    train(_train_config(tmp_path, dataset, epochs=3), progress=False, stop_after_epochs=2)
    metrics = tmp_path / "run" / "metrics.json"
    history = json.loads(metrics.read_text())["epochs"]
    metrics.write_text(json.dumps({"epochs": history[:1]}))  # killed before metrics.json
    train(_train_config(tmp_path, dataset, epochs=3), resume=True, progress=False)
    rows = json.loads(metrics.read_text())["epochs"]
    assert [r["epoch"] for r in rows] == [1, 2, 3]


def test_error_structure_too_large_for_memory(monkeypatch):
    from ase_distill import memory

    monkeypatch.setattr(memory, "available_bytes", lambda device: 2**16)  # 64 KiB free
    monkeypatch.setattr(memory, "ALWAYS_FITS", 0)  # small calls are not checked otherwise
    atoms = molecule("CH3CH2OH")
    atoms.calc = DistilledCalculator(_student())
    with pytest.raises(memory.MemoryLimitError, match="needs about .* GiB.*float32"):
        atoms.get_potential_energy()


def test_memory_estimate_scales_with_edges_features_blocks_and_float_size():
    from ase_distill.memory import estimate_call_bytes

    base = estimate_call_bytes(1000, 46, 3, torch.float64)
    assert estimate_call_bytes(2000, 46, 3, torch.float64) == 2 * base
    assert estimate_call_bytes(1000, 46, 3, torch.float32) == base // 2
    assert math.isclose(base, 64 * 1000 * 46 * 8, rel_tol=0.05)  # measured: 64 E F bytes


# --- the "also" list ------------------------------------------------------------------------------
def test_card_descriptions_state_the_real_parameter_count():
    from ase_distill.registry import load_student, shipped_students

    for name in shipped_students():
        model, card = load_student(name)
        assert f"{model.count_parameters():,} parameters" in card["description"], name
        assert card["parameters"] == model.count_parameters()


def test_the_ratio_target_divides_by_the_shipped_students_metric():
    """Issue 11's "size must pay": original's held-out force RMSE over the shipped tiny's."""
    from ase_distill.registry import load_student
    from training.ship import target_status

    split = "heldout_md_300_600K"
    tiny_rmse = load_student("tiny")[1]["metrics"][split]["force_rmse"]
    status = target_status("original", {split: {"force_rmse": 0.79 * tiny_rmse}})
    ratio = status["force_rmse_vs_tiny"]
    assert ratio["relative_to"] == "tiny" and ratio["target"] == 0.8
    assert math.isclose(ratio["measured"], 0.79) and ratio["met"]
    status = target_status("original", {split: {"force_rmse": 0.81 * tiny_rmse}})
    assert not status["force_rmse_vs_tiny"]["met"]
    assert target_status("original", {})["force_rmse_vs_tiny"]["measured"] is None


def test_md_verdict_uses_the_students_own_target():
    from md_validation.suite import verdict

    m = {
        "runs": {"nve": {"s": {"stable": True, "failure": None, "failure_time_ps": None}}},
        "force_fidelity": {"force_r2": 0.975, "force_rmse": 0.1, "force_angle_deg": 8.0},
        "targets": {"force_r2": 0.97},
    }
    assert "meets this student's R2 target 0.97" in verdict(m, "s")
    m["targets"]["force_r2"] = 0.99
    assert "below this student's R2 target 0.99" in verdict(m, "s")


def test_periodic_cell_stress_of_a_random_crystal_is_finite_in_a_batch_with_a_molecule():
    from ase_distill import ConservativePotential, atoms_to_graph

    model = _student().double()
    graph = atoms_to_graph([random_crystal(model, 3), molecule("H2O")], model.cutoff)
    out = ConservativePotential(model).evaluate(graph, stress=True)
    assert torch.isfinite(out["stress"]).all() and torch.all(out["stress"][1] == 0)
