"""Distillation pipeline: generate -> train -> load, resume after a kill, and bad input."""

import filecmp
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.cluster import Icosahedron
from ase.io import write

from ase_distill import DistilledCalculator
from training.config import (
    GenerateConfig,
    MDConfig,
    RattleConfig,
    RelaxConfig,
    TrainConfig,
    load_config,
)
from training.generate import FORCES_KEY, generate, read_dataset
from training.teachers import TeacherError, make_teacher
from training.train import Trainer, TrainingError, train

ROOT = Path(__file__).resolve().parents[1]

CU_ARCH = {"species": [29], "cutoff": 4.0, "features": 16, "interactions": 2, "radial_basis": 8}


@pytest.fixture(scope="module")
def cu_seed(tmp_path_factory):
    path = tmp_path_factory.mktemp("seed") / "cu13.xyz"
    write(path, Icosahedron("Cu", 2, latticeconstant=3.6))
    return str(path)


def _emt_gen(out, seed_file, **kw):
    return GenerateConfig(
        teacher="emt",
        seeds=[seed_file],
        output=str(out),
        prerelax_steps=20,
        md=MDConfig(temperatures=[300.0, 900.0], steps=120, interval=4),
        rattle=RattleConfig(sigmas=[0.05, 0.1], count=10),
        relax=RelaxConfig(steps=12, interval=2),
        **kw,
    )


@pytest.fixture(scope="module")
def emt_dataset(tmp_path_factory, cu_seed):
    out = tmp_path_factory.mktemp("emt")
    summary = generate(_emt_gen(out, cu_seed), progress=False)
    return out, summary


def test_generate_writes_labelled_splits(emt_dataset):
    out, summary = emt_dataset
    frames = read_dataset(out / "dataset.xyz")
    assert summary["frames"] == len(frames) > 60
    assert {f.info["split"] for f in frames} >= {"train", "validation"}
    assert all(np.isfinite(f.arrays[FORCES_KEY]).all() for f in frames)
    assert summary["teacher"]["name"] == "emt"
    assert (out / "summary.json").is_file()


def test_emt_end_to_end_student_beats_force_spread(emt_dataset, tmp_path):
    out, _ = emt_dataset
    config = TrainConfig(
        dataset=str(out / "dataset.xyz"),
        output=str(tmp_path / "run"),
        size="ultra-tiny",
        architecture=CU_ARCH,
        epochs=40,
        batch_size=8,
        lr=5e-3,
        min_lr=1e-4,
        ema_decay=0.9,
    )
    summary = train(config, progress=False)
    val = read_dataset(out / "dataset.xyz", "validation")
    spread = float(np.std(np.concatenate([f.arrays[FORCES_KEY].ravel() for f in val])))
    rmse = summary["metrics"]["validation"]["force_rmse"]
    # The student must explain most of the teacher's force variation: RMSE below 35 % of the
    # spread (R2 > 0.88). A constant (zero-force) predictor scores 100 %.
    assert rmse <= 0.35 * spread, (rmse, spread)
    calc = DistilledCalculator.from_checkpoint(tmp_path / "run" / "best")
    assert calc.card["teacher"]["name"] == "emt"
    assert "validation" in calc.card["metrics"]


def test_generation_resumes_after_interruption(cu_seed, emt_dataset, tmp_path):
    full_out, _ = emt_dataset
    config = _emt_gen(tmp_path / "gen", cu_seed)
    partial = generate(config, progress=False, max_tasks=2)  # "killed" after two tasks
    assert partial["complete"] is False
    shards_before = {p.name: p.read_bytes() for p in (tmp_path / "gen" / "shards").iterdir()}
    assert len(shards_before) == 2
    generate(config, progress=False)
    for name, data in shards_before.items():  # nothing written before the kill was lost
        assert (tmp_path / "gen" / "shards" / name).read_bytes() == data
    assert filecmp.cmp(tmp_path / "gen" / "dataset.xyz", full_out / "dataset.xyz", shallow=False)


def test_generation_refuses_a_changed_config(cu_seed, tmp_path):
    generate(_emt_gen(tmp_path, cu_seed), progress=False, max_tasks=1)
    with pytest.raises(ValueError, match="different config"):
        generate(_emt_gen(tmp_path, cu_seed, seed=7), progress=False)


def _small_train(dataset, out, epochs=4):
    return TrainConfig(
        dataset=str(dataset),
        output=str(out),
        size="ultra-tiny",
        architecture=CU_ARCH,
        epochs=epochs,
        batch_size=8,
        max_steps_per_epoch=4,
        threads=1,
    )


def test_training_resume_is_bit_exact(emt_dataset, tmp_path):
    out, _ = emt_dataset
    train(_small_train(out / "dataset.xyz", tmp_path / "a"), progress=False)
    part = train(
        _small_train(out / "dataset.xyz", tmp_path / "b"), progress=False, stop_after_epochs=2
    )
    assert part == {"complete": False, "epoch": 2}
    train(_small_train(out / "dataset.xyz", tmp_path / "b"), resume=True, progress=False)
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for key in a["ema"]:
        assert torch.equal(a["ema"][key], b["ema"][key]), key


def test_the_last_ema_model_starts_a_stage_but_cannot_ship(emt_dataset, tmp_path):
    from ase_distill.checkpoint import load_checkpoint
    from training.ship import ship
    from training.train import save_last_ema

    out, _ = emt_dataset
    train(_small_train(out / "dataset.xyz", tmp_path / "a", epochs=2), progress=False)
    path = save_last_ema(tmp_path / "a")
    model, card = load_checkpoint(path)
    last = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, last["ema"][key]), key
    assert card["training"]["picked"]["epoch"] == 2 and "metrics" not in card
    with pytest.raises(ValueError, match="no evaluation metrics"):
        ship(path, "ultra-tiny")
    follow = _small_train(out / "dataset.xyz", tmp_path / "b", epochs=1)
    follow.init_from = str(path)
    assert train(follow, progress=False)["complete"]


def _seeded_frames(split: str, seeds: list[str], per_seed: int) -> list[Atoms]:
    frames = []
    for seed in seeds:
        for k in range(per_seed):
            atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74 + 0.01 * k]])
            atoms.arrays[FORCES_KEY] = np.full((2, 3), 0.1 * k)
            atoms.info.update(seed=seed, split=split)
            frames.append(atoms)
    return frames


def test_validation_molecules_hold_out_whole_molecules():
    from training.train import hold_out_molecules, split_frames

    seeds = [f"mol{k}" for k in range(6)]
    frames = [
        *_seeded_frames("train", seeds, 4),
        *_seeded_frames("validation", seeds, 1),
        *_seeded_frames("test", seeds, 1),
    ]
    out, above = split_frames(frames, max_force=0.25, validation_molecules=2)
    held = {f.info["seed"] for f in out["validation"]}
    assert len(held) == 2 and len(out["validation"]) == 2 * 5  # every frame of each molecule
    assert above["validation"] == 2  # one frame of each at 0.3 eV/A, kept and counted
    assert not held & {f.info["seed"] for f in out["train"]}
    # the other molecules' validation frames train; frames above max_force (0.3) stay out
    assert len(out["train"]) == 4 * (3 + 1) and len(out["test"]) == 6
    again, _ = split_frames(frames, 0.25, 2)
    assert [f.info["frame_index"] for f in again["validation"]] == [
        f.info["frame_index"] for f in out["validation"]
    ]  # the same molecules on every run
    by_split, _ = split_frames(frames, 0.0)
    with pytest.raises(TrainingError, match="at least one left to train on; 6 of 6"):
        hold_out_molecules(by_split, 6)
    del by_split["train"][0].info["seed"]
    with pytest.raises(TrainingError, match="info\\['seed'\\]"):
        hold_out_molecules(by_split, 1)


def test_validation_molecules_come_only_from_names_matching_the_pattern():
    from training.train import hold_out_molecules, split_frames

    seeds = ["old0", "old1", "old2", "x4a", "x4b", "x4c"]
    by_split, _ = split_frames(_seeded_frames("train", seeds, 2), 0.0)
    out = hold_out_molecules(by_split, 2, "x4*")
    held = {f.info["seed"] for f in out["validation"]}
    assert len(held) == 2 and held < {"x4a", "x4b", "x4c"}
    with pytest.raises(TrainingError, match="3 of 6 match"):
        hold_out_molecules(by_split, 4, "x4*")


def test_the_trainer_refuses_to_hold_out_every_molecule(emt_dataset, tmp_path):
    out, _ = emt_dataset
    seeds = {f.info["seed"] for f in read_dataset(out / "dataset.xyz")}
    config = _small_train(out / "dataset.xyz", tmp_path / "run", epochs=1)
    config.validation_molecules = len(seeds)
    with pytest.raises(TrainingError, match="at least one left to train on"):
        Trainer(config, progress=False)


@pytest.mark.slow
def test_training_killed_with_sigkill_resumes(emt_dataset, tmp_path):
    """A real kill -9 mid-run: last.pt stays readable and --resume finishes the run."""
    out, _ = emt_dataset
    run = tmp_path / "killed"
    args = [
        sys.executable,
        "-m",
        "training.cli",
        "train",
        "--quiet",
        "--dataset",
        str(out / "dataset.xyz"),
        "--output",
        str(run),
        "--size",
        "ultra-tiny",
        "--epochs",
        "60",
        "--threads",
        "1",
        "--set",
        "train.architecture={species: [29], cutoff: 4.0, features: 16, interactions: 2}",
        "--set",
        "train.max_steps_per_epoch=3",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(args, cwd=ROOT, env=env)
    deadline = time.time() + 120
    while not (run / "metrics.json").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = torch.load(run / "last.pt", weights_only=True)
    assert 1 <= state["epoch"] < 60
    done = subprocess.run(args + ["--resume"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 60


def test_unknown_teacher_lists_known():
    with pytest.raises(ValueError, match=r"Unknown teacher 'dft9000'.*gfn2-xtb.*emt"):
        make_teacher("dft9000")


def test_unreadable_seed_file(tmp_path):
    bad = tmp_path / "broken.xyz"
    bad.write_text("this is not\nan xyz file\n")
    config = GenerateConfig(teacher="emt", seeds=[str(bad)], output=str(tmp_path / "o"))
    with pytest.raises(ValueError, match="Could not read structure file"):
        generate(config, progress=False)


def test_unknown_seed_name(tmp_path):
    config = GenerateConfig(teacher="emt", seeds=["unobtainium"], output=str(tmp_path / "o"))
    with pytest.raises(ValueError, match="Unknown structure 'unobtainium'"):
        generate(config, progress=False)


class NaNCalc:
    """An ASE calculator that returns NaN (a broken teacher)."""

    def __new__(cls):
        from ase.calculators.calculator import Calculator

        class _NaN(Calculator):
            implemented_properties = ["energy", "forces"]

            def calculate(self, atoms=None, properties=("energy",), system_changes=()):
                super().calculate(atoms, properties, system_changes)
                self.results = {"energy": float("nan"), "forces": np.full((len(atoms), 3), np.nan)}

        return _NaN()


def test_teacher_returning_nan_is_a_clear_error(cu_seed, tmp_path):
    teacher = make_teacher(NaNCalc())
    with pytest.raises(TeacherError, match="non-finite"):
        from ase.build import molecule

        teacher.label(molecule("H2O"))
    config = GenerateConfig(
        teacher="nan",
        seeds=[cu_seed],
        output=str(tmp_path / "o"),
        prerelax_steps=0,
        md=MDConfig(temperatures=[300.0], steps=8, interval=4),
        rattle=RattleConfig(count=2),
        relax=RelaxConfig(enabled=False),
    )
    with pytest.raises(ValueError, match="produced no usable frame"):
        generate(config, teacher=teacher, progress=False)
    assert (tmp_path / "o" / "failures.jsonl").read_text().count("non-finite") >= 2


def test_unknown_config_key(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("train:\n  epochz: 3\n")
    with pytest.raises(ValueError, match=r"Unknown config key\(s\) train.epochz"):
        load_config(cfg)
    with pytest.raises(ValueError, match=r"generate.md.temps"):
        load_config(None, ["generate.md.temps=[1]"])


def test_cli_reports_bad_input(tmp_path):
    from training.cli import main

    assert main(["generate", "--teacher", "nope", "--output", str(tmp_path / "x")]) == 2


def test_orb_adapter_end_to_end(tmp_path):
    pytest.importorskip("orb_models", reason="optional extra ase-distill[orb]")
    dtype = torch.get_default_dtype()
    config = GenerateConfig(
        teacher="orb-v3-conservative-inf-omat",
        teacher_options={
            "random_weights": True,
            "precision": "float64",
            "architecture": {
                "latent_dim": 32,
                "base_mlp_hidden_dim": 64,
                "num_message_passing_steps": 2,
            },
        },
        seeds=["CH3CH2OH"],
        output=str(tmp_path / "orb"),
        prerelax_steps=0,
        md=MDConfig(temperatures=[300.0], steps=12, interval=3),
        rattle=RattleConfig(sigmas=[0.05], count=4),
        relax=RelaxConfig(enabled=False),
        validation_fraction=0.25,
    )
    summary = generate(config, progress=False)
    assert torch.get_default_dtype() == dtype  # Orb's loaders must not leak their dtype
    assert summary["frames"] >= 6
    assert summary["teacher"]["package"] == "orb-models"
    train(
        TrainConfig(
            dataset=str(tmp_path / "orb" / "dataset.xyz"),
            output=str(tmp_path / "s"),
            size="ultra-tiny",
            epochs=2,
            batch_size=4,
        ),
        progress=False,
    )
    calc = DistilledCalculator.from_checkpoint(tmp_path / "s" / "best.pt")
    assert calc.card["teacher"]["name"] == "orb-v3-conservative-inf-omat"
    from ase.build import molecule

    assert np.isfinite(calc.get_forces(molecule("CH3CH2OH"))).all()


def test_orb_offline_error_says_to_pass_weights(monkeypatch):
    pytest.importorskip("orb_models", reason="optional extra ase-distill[orb]")
    from orb_models.forcefield import pretrained

    def offline(**kwargs):
        raise ConnectionError("no network")

    monkeypatch.setitem(pretrained.ORB_PRETRAINED_MODELS, "orb-v3-direct-20-omat", offline)
    teacher = make_teacher("orb-v3-direct-20-omat")
    with pytest.raises(TeacherError, match="weights_path"):
        _ = teacher.calculator


@pytest.mark.slow
def test_generation_killed_with_sigkill_resumes(cu_seed, tmp_path):
    """A real kill -9 during generation: finished shards survive, the resumed dataset equals an
    uninterrupted run's byte for byte."""
    cfg = tmp_path / "gen.yaml"
    cfg.write_text(
        "generate:\n  teacher: emt\n  seeds: [" + cu_seed + "]\n  prerelax_steps: 5\n"
        "  md: {temperatures: [300.0, 600.0, 900.0, 1200.0], steps: 1500, interval: 100}\n"
        "  rattle: {count: 0}\n  relax: {enabled: false}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def cli(out, *extra):
        return [
            sys.executable,
            "-m",
            "training.cli",
            "generate",
            "--config",
            str(cfg),
            "--quiet",
            "--output",
            str(out),
            *extra,
        ]

    killed = tmp_path / "killed"
    proc = subprocess.Popen(cli(killed), cwd=ROOT, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((killed / "shards").glob("*.xyz"))) < 1:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {p.name: p.read_bytes() for p in (killed / "shards").glob("*.xyz")}
    assert 1 <= len(before) < 4, "the kill should land mid-run"
    assert not (killed / "dataset.xyz").exists()
    assert subprocess.run(cli(killed), cwd=ROOT, env=env).returncode == 0
    for name, data in before.items():
        assert (killed / "shards" / name).read_bytes() == data
    full = tmp_path / "full"
    assert subprocess.run(cli(full), cwd=ROOT, env=env).returncode == 0
    assert filecmp.cmp(killed / "dataset.xyz", full / "dataset.xyz", shallow=False)


@pytest.mark.slow
def test_dask_local_cluster_writes_the_same_shards(cu_seed, tmp_path):
    """Labelling through Dask (a LocalCluster) gives byte-identical shards to the process pool."""
    pytest.importorskip("dask.distributed", reason="optional extra ase-distill[dask]")
    pool = _emt_gen(tmp_path / "pool", cu_seed, workers=2)
    dask = _emt_gen(tmp_path / "dask", cu_seed, workers=2, executor="dask")
    generate(pool, progress=False)
    generate(dask, progress=False)
    names = sorted(p.name for p in (tmp_path / "pool" / "shards").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "dask" / "shards").iterdir())
    for name in names:
        a = (tmp_path / "pool" / "shards" / name).read_bytes()
        assert a == (tmp_path / "dask" / "shards" / name).read_bytes(), name
    assert filecmp.cmp(tmp_path / "pool" / "dataset.xyz", tmp_path / "dask" / "dataset.xyz")


def test_refit_reference_removes_a_per_element_offset(emt_dataset):
    from ase_distill.model import StudentModel, size_config
    from training.train import prepare, refit_energy_reference

    out, _ = emt_dataset
    frames = read_dataset(out / "dataset.xyz", "train")[:40]
    model = StudentModel(size_config("ultra-tiny", **CU_ARCH)).double()
    samples = prepare(frames, 4.0, (29,))
    for s in samples:  # teacher energies the student misses by exactly 0.25 eV per Cu atom
        s.energy = float(_energy(model, s)) + 0.25 * len(s.graph.numbers)
    shift = refit_energy_reference(model, samples)
    assert shift[29] == pytest.approx(0.25, abs=1e-8)
    assert all(_energy(model, s) == pytest.approx(s.energy, abs=1e-6) for s in samples)


def _energy(model, sample) -> float:
    from ase_distill.model import ConservativePotential
    from training.train import collate

    graph, _ = collate([sample], torch.float64, torch.device("cpu"))
    out = ConservativePotential(model).evaluate(graph, forces=False)
    return float(out["energy"][0].detach())


def _short_run(dataset_dir, output) -> dict:
    """Settings of a 2-step Cu run, trained once into ``output`` (a start for fine-tunes)."""
    base = dict(
        dataset=str(dataset_dir / "dataset.xyz"), size="ultra-tiny", architecture=CU_ARCH,
        epochs=1, max_steps_per_epoch=2, batch_size=4,
    )  # fmt: skip
    train(TrainConfig(output=str(output), **base), progress=False)
    return base


def test_init_from_with_refit_records_the_shift(emt_dataset, tmp_path):
    base = _short_run(emt_dataset[0], tmp_path / "a")
    config = TrainConfig(
        output=str(tmp_path / "b"), init_from=str(tmp_path / "a" / "best.pt"),
        refit_reference=True, **base,
    )  # fmt: skip
    train(config, progress=False)
    card = DistilledCalculator.from_checkpoint(tmp_path / "b" / "best").card
    assert set(card["training"]["reference_shift_ev"]) == {"29"}
    assert card["training"]["init_from"].endswith("best.pt")


def test_card_lists_every_training_stage(emt_dataset, tmp_path):
    """A fine-tune's card credits the stage it started from too, not its own minutes alone."""
    from training.train import save_last_ema

    base = _short_run(emt_dataset[0], tmp_path / "a")
    save_last_ema(tmp_path / "a")  # a stage may start from the last EMA model (its own card)
    config = TrainConfig(output=str(tmp_path / "b"), init_from=str(tmp_path / "a" / "last_ema.pt"),
                         **base)  # fmt: skip
    train(config, progress=False)
    training = DistilledCalculator.from_checkpoint(tmp_path / "b" / "best").card["training"]
    stages = training["stages"]
    assert [s["run"] for s in stages] == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert stages[0]["init_from"] is None and stages[1]["init_from"].endswith("last_ema.pt")
    assert stages[1]["steps"] == 2 and stages[1]["batch_size"] == base["batch_size"]
    assert training["stages_seconds"] == pytest.approx(sum(s["seconds"] for s in stages), abs=0.1)


def test_stages_mark_a_missing_card_and_stop_at_a_loop(tmp_path):
    from training.lineage import training_stages

    def card(run, init_from):
        return {"training": {"config": {"output": run}, "init_from": init_from, "seconds": 1.0}}

    (tmp_path / "a.json").write_text(json.dumps(card("a", str(tmp_path / "gone.pt"))))
    stages = training_stages(card("b", str(tmp_path / "a.pt")))
    assert stages[0] == {"init_from": str(tmp_path / "gone.pt"), "card": "not found"}
    assert [s.get("run") for s in stages[1:]] == ["a", "b"]
    (tmp_path / "a.json").write_text(json.dumps(card("a", str(tmp_path / "a.pt"))))
    assert [s["run"] for s in training_stages(card("b", str(tmp_path / "a.pt")))] == ["a", "b"]


def test_ablation_table_keeps_the_rows_in_order_and_names_a_missing_student():
    from training.ship import ablation_table

    numbers = {"energy_mae_mev_per_atom": 2.51234, "force_r2": 0.99341, "n_atoms": 7}
    report = {"split": "heldout", "frames": 3, "summary": {"a.pt": numbers, "b.pt": numbers}}
    table = ablation_table(report, ["b.pt=energy stage", "a.pt=start"])
    assert [r["step"] for r in table["rows"]] == ["energy stage", "start"]
    assert table["rows"][0] == {
        "step": "energy stage", "checkpoint": "b.pt",
        "energy_mae_mev_per_atom": 2.5123, "force_r2": 0.9934,
    }  # fmt: skip
    with pytest.raises(ValueError, match="a.pt, b.pt"):
        ablation_table(report, ["c.pt=missing"])
    with pytest.raises(ValueError, match="CHECKPOINT=LABEL"):
        ablation_table(report, ["a.pt"])


def test_init_from_a_student_with_a_pair_table_keeps_the_table(emt_dataset, tmp_path):
    from dataclasses import replace

    from ase_distill.checkpoint import load_checkpoint, save_checkpoint
    from training.pair_correction import with_table

    base = _short_run(emt_dataset[0], tmp_path / "a")
    model, card = load_checkpoint(tmp_path / "a" / "best")
    paired = with_table(model, (29, 29), 2.0, np.linspace(0.1, -0.1, 8))
    save_checkpoint(paired, tmp_path / "paired", card)
    config = TrainConfig(output=str(tmp_path / "b"), init_from=str(tmp_path / "paired.pt"), **base)
    train(config, progress=False)
    train(replace(config, epochs=2), resume=True, progress=False)  # a resume rebuilds it too
    tuned, _ = load_checkpoint(tmp_path / "b" / "best")
    assert tuned.config.pair_knots == 8 and tuned.config.pair_start == 2.0
    torch.testing.assert_close(tuned.pair.table, paired.pair.table)  # kept, not trained


def _children(pid: int) -> list[int]:
    """Pids of the live child processes of ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_pool_workers_exit_when_generation_is_killed(cu_seed, tmp_path):
    """kill -9 of a generation with workers leaves no worker labelling for nobody."""
    cfg = tmp_path / "gen.yaml"
    cfg.write_text(
        "generate:\n  teacher: emt\n  seeds: [" + cu_seed + "]\n  prerelax_steps: 5\n"
        "  md: {temperatures: [300.0, 600.0, 900.0, 1200.0], steps: 100000, interval: 100}\n"
        "  rattle: {count: 0}\n  relax: {enabled: false}\n  workers: 2\n"
    )
    cmd = [sys.executable, "-m", "training.cli", "generate", "--config", str(cfg), "--quiet",
           "--output", str(tmp_path / "out")]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 120
    while time.time() < deadline and len(workers := _children(proc.pid)) < 3:
        time.sleep(0.2)  # the pool's two workers and its resource tracker
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    def alive() -> list[int]:
        return [p for p in workers if Path(f"/proc/{p}").exists() and "spawn_main" in
                Path(f"/proc/{p}/cmdline").read_text(errors="ignore")]  # fmt: skip

    deadline = time.time() + 60  # a worker still importing checks once its initializer runs
    while alive() and time.time() < deadline:
        time.sleep(0.5)
    assert not alive(), f"orphaned workers still running: {alive()}"


def test_time_budget_ends_the_run_and_the_schedule(emt_dataset, tmp_path):
    """A budget spent within the first epoch: one epoch, a finished run (card, summary), and the
    schedule at its end (min_lr) from then on."""
    out, _ = emt_dataset
    config = _small_train(out / "dataset.xyz", tmp_path / "run", epochs=50)
    config.time_budget_minutes = 1e-6
    summary = train(config, progress=False)
    assert summary["complete"]
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"]
    assert len(history) == 1
    assert history[0]["lr"] == config.lr  # the first epoch starts at the top of the schedule
    trainer = Trainer(config, resume=True, progress=False)
    assert trainer.lr_at(trainer.epoch) == pytest.approx(config.min_lr)


def test_molecular_force_loss_is_the_error_of_each_molecules_net_force():
    """Two waters: the extra loss term is the weighted mean squared net-force error."""
    from ase.build import molecule

    from ase_distill.model import StudentModel, size_config
    from training.train import collate, loss_fn, prepare

    a, b = molecule("H2O"), molecule("H2O")
    b.translate([3.0, 0.2, 0.1])
    pair = a + b
    rng = np.random.default_rng(0)
    pair.info["REF_energy"] = -10.0
    pair.arrays[FORCES_KEY] = rng.normal(size=(6, 3))
    model = StudentModel(size_config("ultra-tiny", species=(1, 8), cutoff=4.0)).double()
    samples = prepare([pair], 4.0, (1, 8), molecules=True)
    assert samples[0].molecules.tolist() == [0, 0, 0, 1, 1, 1]
    graph, targets = collate(samples, torch.float64)

    def loss(weight):
        config = TrainConfig(molecular_force_weight=weight)
        return float(loss_fn(model, graph, targets, config, False)[0].detach())

    _, out = loss_fn(model, graph, targets, TrainConfig(), False)
    err = (out["forces"] - targets["forces"]).detach().numpy()
    net = np.stack([err[:3].sum(0), err[3:].sum(0)])
    assert loss(2.0) - loss(0.0) == pytest.approx(2.0 * np.sum(net**2) / 6, rel=1e-9)
    _, plain = collate(prepare([pair], 4.0, (1, 8)), torch.float64)
    assert "molecule" not in plain  # without molecules the term is never computed


def test_relative_force_loss_weighs_each_atoms_error_by_its_teacher_force():
    """The extra term is the mean over force components of |dF|^2 / (|F|^2 + floor^2), so a
    small force's error counts as much as a large force's error of the same angle."""
    from ase.build import molecule

    from ase_distill.model import StudentModel, size_config
    from training.train import collate, loss_fn, prepare

    water = molecule("H2O")
    water.info["REF_energy"] = -10.0
    water.arrays[FORCES_KEY] = np.array([[0.0, 0.0, 3.0], [0.05, 0.0, 0.0], [0.0, 1.0, 0.0]])
    model = StudentModel(size_config("ultra-tiny", species=(1, 8), cutoff=4.0)).double()
    graph, targets = collate(prepare([water], 4.0, (1, 8)), torch.float64)

    def loss(weight, floor=0.5):
        config = TrainConfig(relative_force_weight=weight, relative_force_floor=floor)
        return float(loss_fn(model, graph, targets, config, False)[0].detach())

    _, out = loss_fn(model, graph, targets, TrainConfig(), False)
    err = (out["forces"] - targets["forces"]).detach().numpy()
    ref = water.arrays[FORCES_KEY]
    for floor in (0.5, 0.1):
        expected = np.sum(np.sum(err**2, 1) / (np.sum(ref**2, 1) + floor**2)) / 9
        assert loss(3.0, floor) - loss(0.0) == pytest.approx(3.0 * expected, rel=1e-9)


def test_init_from_a_shallower_student_grows_it(emt_dataset, tmp_path):
    out, _ = emt_dataset
    base = dict(
        dataset=str(out / "dataset.xyz"), size="ultra-tiny", epochs=1, max_steps_per_epoch=2,
        batch_size=4,
    )  # fmt: skip
    train(TrainConfig(output=str(tmp_path / "a"), architecture=CU_ARCH, **base), progress=False)
    deeper = {**CU_ARCH, "interactions": CU_ARCH["interactions"] + 1}
    config = TrainConfig(
        output=str(tmp_path / "b"), architecture=deeper, init_from=str(tmp_path / "a" / "best.pt"),
        **base,
    )  # fmt: skip
    train(config, progress=False)
    assert (
        DistilledCalculator.from_checkpoint(tmp_path / "b" / "best").model.config.interactions == 3
    )
    wider = {**CU_ARCH, "features": 8}
    with pytest.raises(TrainingError, match="fewer interactions"):
        train(
            TrainConfig(
                output=str(tmp_path / "c"),
                architecture=wider,
                init_from=str(tmp_path / "a" / "best.pt"),
                **base,
            ),
            progress=False,
        )


def test_offset_refit_recovers_per_element_shifts_and_rejects_unknown_students():
    from training.offset_refit import cross_validated, offsets

    rng = np.random.default_rng(3)
    fractions = rng.dirichlet(np.ones(4), size=40)  # 40 molecules' H, C, N, O fractions
    shift = np.array([0.5, 1.5, -5.0, -2.0])
    # offsets that are exactly a per-element shift: cross-validation predicts them to round-off
    assert np.allclose(cross_validated(fractions, fractions @ shift), fractions @ shift)
    report = {"reports": {"a.pt": {"by_molecule": {"m": {"energy_offset_mev_per_atom": -1.0}}}}}
    assert offsets(report, "a.pt") == {"m": -1.0}
    with pytest.raises(ValueError, match="a.pt"):
        offsets(report, "b.pt")


@pytest.mark.parametrize("script", sorted((ROOT / "training").glob("*.sh")), ids=lambda p: p.name)
def test_training_scripts_parse(script):
    """Every recipe script is valid bash: the rounds run them unattended, often mid-session."""
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_validate_chno_needs_a_student():
    """Without a student the MD validation script says how to call it, before any MD starts."""
    result = subprocess.run(
        ["bash", str(ROOT / "training" / "validate_chno.sh")], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "usage: training/validate_chno.sh STUDENT" in result.stderr
