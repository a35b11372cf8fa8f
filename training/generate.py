"""Teacher-driven data generation: MD at several temperatures, rattles, relaxation trajectories.

The work is cut into deterministic tasks (seed x kind x parameter x repeat). Each finished task
is written atomically as its own shard (``shards/<task>.xyz``), so an interrupted run resumes by
skipping finished shards: no written frame is lost and only the task in flight is redone, with
the same result (each task has its own RNG seed). Teacher failures on a frame are logged to
``failures.jsonl`` and skipped. The merged ``dataset.xyz`` carries the teacher's labels as
``REF_energy`` / ``REF_forces`` / ``REF_stress`` and each frame's ``split``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.io import read, write
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
from ase.optimize import BFGS
from tqdm.auto import tqdm

from ase_distill.checkpoint import atomic_write_bytes, atomic_write_json
from ase_distill.md import MDSettings, make_dynamics
from training.config import GenerateConfig, to_dict
from training.structures import from_smiles, load_structure
from training.teachers import Teacher, TeacherError, TeacherSpec, make_teacher

log = logging.getLogger(__name__)

ENERGY_KEY, FORCES_KEY, STRESS_KEY = "REF_energy", "REF_forces", "REF_stress"


@dataclass(frozen=True)
class Task:
    """One unit of generation work."""

    seed_name: str
    kind: str  # "md" | "rattle" | "relax"
    param: float
    repeat: int
    rng_seed: int
    variant: int = 0  # which conformer an MD run of a SMILES seed starts from (not in the id)

    @property
    def id(self) -> str:
        """File-safe unique id."""
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.seed_name)[:40]
        digest = hashlib.sha1(self.seed_name.encode()).hexdigest()[:6]
        return f"{safe}-{digest}__{self.kind}_{self.param:g}_{self.repeat}"


def plan_tasks(config: GenerateConfig, seed_names: list[str]) -> list[Task]:
    """All tasks of a run, in a fixed order with per-task RNG seeds."""
    tasks = []
    for name in seed_names:
        for r in range(config.md.repeats if config.md.steps > 0 else 0):
            for t in config.md.temperatures:
                n_md = sum(1 for x in tasks if x.seed_name == name and x.kind == "md")
                tasks.append(Task(name, "md", float(t), r, 0, n_md % config.conformers))
        for sigma in config.rattle.sigmas if config.rattle.count > 0 else []:
            tasks.append(Task(name, "rattle", float(sigma), 0, 0))
        if config.relax.enabled:
            for r in range(config.relax.repeats):
                tasks.append(Task(name, "relax", config.relax.rattle_sigma, r, 0))
        if config.strain.count > 0:
            tasks.append(Task(name, "strain", config.strain.max_strain, 0, 0))
        if config.tree.children > 0:
            tasks.append(Task(name, "tree", config.tree.sigma_max, 0, 0))
        if config.complexes.count > 0:
            tasks.append(Task(name, "complex", float(config.complexes.count), 0, 0))
    return [
        Task(t.seed_name, t.kind, t.param, t.repeat, config.seed * 1_000_003 + k, t.variant)
        for k, t in enumerate(tasks)
    ]


def _labelled(teacher: Teacher, atoms: Atoms, task: Task) -> Atoms:
    frame = teacher.label(atoms)
    out = Atoms(frame.numbers, frame.positions, cell=frame.cell, pbc=frame.pbc)
    out.info.update(
        {
            ENERGY_KEY: frame.info["energy"],
            "seed": task.seed_name,
            "task": task.id,
            "kind": task.kind,
            "param": task.param,
        }
    )
    out.arrays[FORCES_KEY] = frame.arrays["forces"]
    if "stress" in frame.info:
        out.info[STRESS_KEY] = frame.info["stress"]
    return out


class _Collector:
    """Keeps frames that are not near-duplicates and records failures."""

    def __init__(self, teacher: Teacher, task: Task, tol: float) -> None:
        self.teacher, self.task, self.tol = teacher, task, tol
        self.frames: list[Atoms] = []
        self.failures: list[dict[str, Any]] = []

    def add(self, atoms: Atoms) -> bool:
        for kept in self.frames:
            if np.max(np.abs(kept.positions - atoms.positions)) < self.tol:
                return True
        try:
            self.frames.append(_labelled(self.teacher, atoms, self.task))
            return True
        except TeacherError as exc:
            self.failures.append(
                {"task": self.task.id, "frame": len(self.frames), "error": str(exc)}
            )
            log.warning("skipping frame of %s: %s", self.task.id, exc)
            return False


def _prerelax(teacher: Teacher, atoms: Atoms, steps: int) -> Atoms:
    atoms = atoms.copy()
    if steps <= 0:
        return atoms
    atoms.calc = teacher.calculator
    try:
        BFGS(atoms, logfile=None).run(fmax=0.05, steps=steps)
    except Exception as exc:  # a failing pre-relaxation is not fatal: start from the seed
        log.warning("pre-relaxation failed (%s); starting from the seed geometry", exc)
        atoms = atoms.copy()
    atoms.calc = None
    return atoms


def strained(atoms: Atoms, max_strain: float, sigma: float, rng: np.random.Generator) -> Atoms:
    """``atoms`` in a randomly deformed cell, positions scaled with it, then rattled.

    Normal strains up to ``max_strain``, symmetric shear up to half of it, Gaussian rattle of
    ``sigma`` Angstrom.

    Raises:
        ValueError: a structure without a periodic cell (strain needs one).
    """
    if not atoms.pbc.all():
        raise ValueError("strain tasks need periodic seeds (atoms.pbc all True with a cell).")
    eps = np.diag(rng.uniform(-max_strain, max_strain, 3))
    shear = rng.uniform(-max_strain / 2, max_strain / 2, 3)
    eps[0, 1] = eps[1, 0] = shear[0]
    eps[0, 2] = eps[2, 0] = shear[1]
    eps[1, 2] = eps[2, 1] = shear[2]
    trial = atoms.copy()
    trial.set_cell(atoms.cell[:] @ (np.eye(3) + eps), scale_atoms=True)
    trial.positions += rng.normal(scale=sigma, size=trial.positions.shape)
    return trial


def run_task(teacher: Teacher, start: Atoms, task: Task, config: GenerateConfig) -> _Collector:
    """Run one task with ``teacher`` from ``start``; returns kept frames and failures."""
    rng = np.random.default_rng(task.rng_seed)
    col = _Collector(teacher, task, config.dedupe_tol)
    atoms = _prerelax(teacher, _conformer(start, task.variant), config.prerelax_steps)
    if task.kind in ("tree", "complex"):
        try:
            grow = _tree_frames if task.kind == "tree" else _complex_frames
            for frame in grow(teacher, atoms, config, rng):
                col.add(frame)
        except Exception as exc:  # a tree that cannot grow or a teacher that fails on a complex
            col.failures.append({"task": task.id, "frame": len(col.frames), "error": repr(exc)})
            log.warning("task %s stopped early: %s", task.id, exc)
        return col
    if task.kind == "rattle":
        for _ in range(config.rattle.count):
            trial = atoms.copy()
            trial.positions += rng.normal(scale=task.param, size=trial.positions.shape)
            col.add(trial)
        return col
    if task.kind == "strain":
        for _ in range(config.strain.count):
            col.add(strained(atoms, task.param, config.strain.rattle_sigma, rng))
        return col
    atoms.calc = teacher.calculator
    try:
        if task.kind == "md":
            md = config.md
            MaxwellBoltzmannDistribution(atoms, temperature_K=task.param, rng=rng)
            Stationary(atoms)
            ZeroRotation(atoms)
            settings = MDSettings(
                "langevin", task.param, md.timestep_fs, md.steps, md.interval, md.friction_per_fs
            )
            dyn = make_dynamics(atoms, settings, rng)
            for _ in range(md.steps // md.interval):
                dyn.run(md.interval)
                if not col.add(atoms):
                    break  # the teacher failed here: the trajectory cannot continue
        elif task.kind == "relax":
            atoms.positions += rng.normal(scale=task.param, size=atoms.positions.shape)
            opt = BFGS(atoms, logfile=None)
            for _ in range(max(config.relax.steps // config.relax.interval, 1)):
                if not col.add(atoms):
                    break
                if opt.run(fmax=config.relax.fmax, steps=config.relax.interval):
                    col.add(atoms)
                    break
        else:
            raise ValueError(f"Unknown task kind {task.kind!r}.")
    except TeacherError:
        raise
    except Exception as exc:  # the teacher raised inside the dynamics / optimiser
        col.failures.append({"task": task.id, "frame": len(col.frames), "error": repr(exc)})
        log.warning("task %s stopped early: %s", task.id, exc)
    return col


def _conformer(start: Atoms, variant: int) -> Atoms:
    """ETKDG conformer ``variant`` of a SMILES seed (``start`` itself for 0 or no SMILES)."""
    smiles = start.info.get("smiles")
    if variant == 0 or not smiles:
        return start
    from training.chemistry import conformers

    found = conformers(smiles, n=variant + 1, seed=0)
    return found[variant] if variant < len(found) else start


def _tree_frames(teacher: Teacher, atoms: Atoms, config: GenerateConfig, rng) -> list[Atoms]:
    """The children of a rattle-relax family tree grown from ``atoms`` (Gardner et al. 2025)."""
    from training.family_tree import TreeSettings, grow_tree

    tree = config.tree
    settings = TreeSettings(
        children=tree.children,
        temperature_K=tree.temperature_K,
        sigma_range=(0.01, tree.sigma_max),
        max_relax_steps=tree.max_relax_steps,
    )
    grown = grow_tree(atoms, teacher.calculator, settings, seed=int(rng.integers(2**31)))
    return [Atoms(a.numbers, a.positions) for a in grown[1:]]


#: Partners of H-bonded and stacked dimers (ASE g2 names).
DIMER_PARTNERS = ("H2O", "CH3OH", "NH3", "HCOOH", "CH3CONH2", "CH3COOH", "C6H6", "C5H5N")
#: Seeds up to this many atoms also pair with a copy of themselves.
MAX_SELF_DIMER_ATOMS = 30


def _complex_frames(teacher: Teacher, atoms: Atoms, config: GenerateConfig, rng) -> list[Atoms]:
    """Complexes of ``atoms`` at every separation, each as built and once rattled."""
    from ase.build import molecule

    from training.complexes import dimer, microsolvate, stacked_dimer

    cfg = config.complexes
    frames = []
    for _ in range(cfg.count):
        kind = rng.choice(["dimer", "stacked", "water"])
        partners = list(DIMER_PARTNERS) + (["self"] if len(atoms) <= MAX_SELF_DIMER_ATOMS else [])
        name = str(rng.choice(partners))
        partner = atoms.copy() if name == "self" else molecule(name)
        n_waters = int(rng.integers(1, cfg.max_waters + 1))
        seed = int(rng.integers(2**31))
        for sep in cfg.separations:
            try:
                if kind == "dimer":
                    built = dimer(atoms, partner, sep, seed=seed)
                elif kind == "stacked":
                    built = stacked_dimer(atoms, partner, sep + 1.4, seed=seed)
                else:
                    built = microsolvate(atoms, n_waters, contact=(sep, sep + 0.3), seed=seed)
            except ValueError:  # a non-planar pair stacked this close would clash: skip it
                continue
            rattled = built.copy()
            rattled.positions += rng.normal(scale=cfg.rattle_sigma, size=built.positions.shape)
            frames += [Atoms(built.numbers, built.positions), rattled]
    return frames


def _frames_bytes(frames: list[Atoms]) -> bytes:
    buffer = io.StringIO()
    if frames:
        write(buffer, frames, format="extxyz")
    return buffer.getvalue().encode()


# --- worker processes ---------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _worker_init(spec: TeacherSpec, parent: int) -> None:
    _exit_with_parent(parent)
    _WORKER["teacher"] = make_teacher(spec)


def _exit_with_parent(parent: int, poll_seconds: float = 1.0) -> None:
    """End this worker process when the process that started it dies.

    A generation killed with SIGKILL (or by a session ending) cannot shut its pool down, and
    its workers would go on labelling tasks nobody collects, taking the cores the resumed run
    needs. A daemon thread watches the parent's pid (given, since a worker may start after
    its parent died) and exits the worker once it differs.
    """
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _worker_run(
    start: Atoms, task: Task, config: GenerateConfig, shard: str
) -> tuple[str, int, list]:
    col = run_task(_WORKER["teacher"], start, task, config)
    atomic_write_bytes(shard, _frames_bytes(col.frames))
    return task.id, len(col.frames), col.failures


def _dask_run(
    spec: TeacherSpec, start: Atoms, task: Task, config: GenerateConfig, shard: str
) -> tuple[str, int, list]:
    """One task on a Dask worker: the teacher is built once per worker process."""
    if _WORKER.get("spec") != spec:
        _WORKER["teacher"], _WORKER["spec"] = make_teacher(spec), spec
    return _worker_run(start, task, config, shard)


def _dask_client(config: GenerateConfig):
    """A Dask client and the local cluster it owns (``None`` for a remote scheduler).

    ``config.scheduler`` is a scheduler address (dask-jobqueue's SLURMCluster gives one, see
    the README); empty means a local cluster of ``config.workers`` single-threaded processes.
    """
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise ValueError(
            "executor: dask needs Dask distributed: `pip install ase-distill[dask]`."
        ) from exc
    if config.scheduler:
        return Client(config.scheduler), None
    cluster = LocalCluster(
        n_workers=config.workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    return Client(cluster), cluster


def check_run_record(out: Path, config: GenerateConfig, teacher: Teacher) -> None:
    """Write ``generate.json`` for a new run; refuse to resume one with a different config."""
    record = {"config": to_dict(config), "teacher": teacher.metadata()}
    record_path = out / "generate.json"
    if not record_path.exists():
        atomic_write_json(record_path, record)
        return
    keep = ("workers", "output")

    def strip(c: dict) -> dict:
        return {k: v for k, v in c.items() if k not in keep}

    # keys added to the config since that run was recorded count with their defaults
    saved = {**to_dict(GenerateConfig()), **json.loads(record_path.read_text())["config"]}
    if strip(saved) != strip(record["config"]):
        changed = sorted(k for k in strip(saved) if saved[k] != record["config"].get(k))
        raise ValueError(
            f"{out} holds a generation run with a different config ({', '.join(changed)}); "
            "resume with the same config or choose a new output folder."
        )


def load_seeds(config: GenerateConfig) -> dict[str, Atoms]:
    """Seed structures by name: the training seeds, the library, then the held-out molecules.

    SMILES seeds keep their SMILES in ``atoms.info["smiles"]`` (for further conformers).
    """
    seeds: dict[str, Atoms] = {}
    for spec in config.seeds:
        name, atoms = load_structure(spec)
        seeds[name] = atoms
    library = read_library(config.library) if config.library else []
    for entry in library[: config.library_size or None]:
        seeds[entry["name"]] = from_smiles(entry["smiles"])
        seeds[entry["name"]].info["smiles"] = entry["smiles"]
    for spec in config.holdout_molecules:
        name, atoms = load_structure(spec)
        if name in seeds and spec not in config.seeds:
            raise ValueError(f"Held-out molecule {name!r} is also a training seed of the library.")
        seeds.setdefault(name, atoms)
    return seeds


def read_library(path: str | Path) -> list[dict[str, Any]]:
    """Entries (name, smiles, category, groups, ring_system) of a molecule library file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"Molecule library {path} not found; build one with `python -m training.chemistry "
            "FOLDER` and give FOLDER/library.json."
        )
    return json.loads(path.read_text())


class _Progress:
    """Progress bar and the failure log of one generation session."""

    def __init__(self, out: Path, total: int, done: int, enabled: bool) -> None:
        self.failures_path = out / "failures.jsonl"
        self.n_failed = 0
        self.bar = tqdm(total=total, initial=done, desc="generate", disable=not enabled)

    def task_done(self, n_frames: int, failures: list[dict]) -> None:
        self.n_failed += len(failures)
        if failures:
            with self.failures_path.open("a") as fh:
                for item in failures:
                    fh.write(json.dumps(item) + "\n")
        self.bar.update(1)
        self.bar.set_postfix(frames=n_frames, failed=self.n_failed)


def run_tasks(
    todo: list[Task],
    seeds: dict[str, Atoms],
    config: GenerateConfig,
    teacher: Teacher,
    shards: Path,
    progress: _Progress,
) -> None:
    """Run tasks here, in a process pool, or on Dask workers; each task writes its own shard.

    Shards go to ``shards`` on a file system every worker sees (a cluster's shared disk).
    """
    if config.executor == "dask":
        client, cluster = _dask_client(config)
        try:
            futures = [
                client.submit(
                    _dask_run,
                    teacher.spec,
                    seeds[t.seed_name],
                    t,
                    config,
                    str(shards.resolve() / f"{t.id}.xyz"),
                    pure=False,
                )  # fmt: skip
                for t in todo
            ]
            from dask.distributed import as_completed as dask_completed

            for fut in dask_completed(futures):
                _, n, fails = fut.result()
                progress.task_done(n, fails)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return
    if config.workers > 1:
        ctx = multiprocessing.get_context("spawn")
        initargs = (teacher.spec, os.getpid())
        with ProcessPoolExecutor(config.workers, ctx, _worker_init, initargs) as pool:
            futures = [
                pool.submit(_worker_run, seeds[t.seed_name], t, config, str(shards / f"{t.id}.xyz"))
                for t in todo
            ]
            for fut in as_completed(futures):
                _, n, fails = fut.result()
                progress.task_done(n, fails)
        return
    for task in todo:
        col = run_task(teacher, seeds[task.seed_name], task, config)
        atomic_write_bytes(shards / f"{task.id}.xyz", _frames_bytes(col.frames))
        progress.task_done(len(col.frames), col.failures)


def generate(
    config: GenerateConfig,
    teacher: Teacher | None = None,
    progress: bool = True,
    max_tasks: int | None = None,
) -> dict[str, Any]:
    """Run (or resume) data generation; returns the summary written to ``summary.json``.

    Steps: check the run record, plan the tasks, run those without a shard, merge.

    Args:
        config: what to generate and where (``config.output``).
        teacher: an already built teacher (default: built from ``config.teacher``).
        progress: show a progress bar.
        max_tasks: stop after this many new tasks (used to test interruption).

    Raises:
        ValueError: bad seeds, a config that differs from the one in an existing output folder,
            or a teacher that failed on every frame.
    """
    out = Path(config.output)
    shards = out / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    if config.workers > 1 and teacher is not None:
        raise ValueError(
            "workers > 1 rebuilds the teacher from config.teacher in every worker process; give "
            "the teacher by name (or import path) instead of passing an object."
        )
    teacher = teacher or make_teacher(TeacherSpec(config.teacher, dict(config.teacher_options)))
    check_run_record(out, config, teacher)
    seeds = load_seeds(config)
    tasks = plan_tasks(config, list(seeds))
    todo = [t for t in tasks if not (shards / f"{t.id}.xyz").exists()]
    if max_tasks is not None:
        todo = todo[:max_tasks]
    t0 = time.time()
    bar = _Progress(out, len(tasks), len(tasks) - len(todo), progress)
    run_tasks(todo, seeds, config, teacher, shards, bar)
    bar.bar.close()
    missing = [t for t in tasks if not (shards / f"{t.id}.xyz").exists()]
    if missing:
        return {"complete": False, "tasks_done": len(tasks) - len(missing), "tasks": len(tasks)}
    return merge(config, tasks, teacher.metadata(), time.time() - t0)


def merge(
    config: GenerateConfig, tasks: list[Task], teacher_meta: dict[str, Any], seconds: float
) -> dict[str, Any]:
    """Merge shards into ``dataset.xyz`` with split labels; write ``summary.json``."""
    out = Path(config.output)
    frames: list[Atoms] = []
    for task in tasks:
        path = out / "shards" / f"{task.id}.xyz"
        if path.stat().st_size:
            frames.extend(read(path, index=":", format="extxyz"))
    n_kept = len(frames)  # frames kept after dedupe and teacher failures
    failures_path = out / "failures.jsonl"
    n_failures = len(failures_path.read_text().splitlines()) if failures_path.exists() else 0
    if not frames:
        raise ValueError(
            f"Teacher {teacher_meta['name']} produced no usable frame ({n_failures} failures, see "
            f"{failures_path}): it returns non-finite values or raises on these structures."
        )
    holdout = {load_structure(h)[0] for h in config.holdout_molecules}
    rng = np.random.default_rng(config.seed)
    counts: dict[str, int] = {"train": 0, "validation": 0, "test": 0, "test_molecule": 0}
    for frame in frames:
        u = rng.random()
        if frame.info["seed"] in holdout:
            split = "test_molecule"
        elif u < config.validation_fraction:
            split = "validation"
        elif u < config.validation_fraction + config.test_fraction:
            split = "test"
        else:
            split = "train"
        frame.info["split"] = split
        frame.info["teacher"] = teacher_meta["name"]
        counts[split] += 1
    atomic_write_bytes(out / "dataset.xyz", _frames_bytes(frames))
    elements = sorted({int(z) for f in frames for z in f.numbers})
    summary = {
        "complete": True,
        "frames": n_kept,
        "splits": counts,
        "failures": n_failures,
        "molecules": sorted({f.info["seed"] for f in frames}),
        "holdout_molecules": sorted(holdout),
        "elements": elements,
        "teacher": teacher_meta,
        "seconds_last_session": round(seconds, 1),
        "config": to_dict(config),
    }
    if config.library:
        library = read_library(config.library)[: config.library_size or None]
        summary["by_library"] = library_counts(library, frames)
    atomic_write_json(out / "summary.json", summary)
    return summary


def library_counts(library: list[dict[str, Any]], frames: list[Atoms]) -> dict[str, Any]:
    """Molecules and frames by category, functional group and ring system of the library."""
    from collections import Counter

    entries = {e["name"]: e for e in library}
    per_seed = Counter(f.info["seed"] for f in frames if f.info["seed"] in entries)
    out: dict[str, Any] = {}
    for key in ("category", "groups", "ring_system"):
        molecules: Counter = Counter()
        n_frames: Counter = Counter()
        for name, count in per_seed.items():
            labels = entries[name][key]
            for label in labels if isinstance(labels, list) else [labels]:
                molecules[label] += 1
                n_frames[label] += count
        out[f"by_{key}"] = {
            k: {"molecules": molecules[k], "frames": n_frames[k]} for k, _ in n_frames.most_common()
        }
    return out


def read_dataset(path: str | Path, split: str | None = None) -> list[Atoms]:
    """Frames of a generated dataset (optionally one split)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Dataset {path} not found; run `ase-distill generate` first.")
    frames = read(path, index=":", format="extxyz")
    if split is not None:
        frames = [f for f in frames if f.info.get("split") == split]
    return frames
