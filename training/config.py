"""Run configuration: one YAML/TOML file with ``generate`` and ``train`` sections.

Every field has a default; unknown keys are errors (a typo must not silently fall back to a
default). Command-line flags override file values (``--set train.epochs=50``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


@dataclass
class MDConfig:
    """Teacher-driven Langevin MD per seed and temperature."""

    temperatures: list[float] = field(default_factory=lambda: [300.0, 600.0])
    steps: int = 400
    interval: int = 10
    timestep_fs: float = 0.5
    friction_per_fs: float = 0.01
    repeats: int = 1


@dataclass
class RattleConfig:
    """Random Gaussian displacements of the (pre-relaxed) seed."""

    sigmas: list[float] = field(default_factory=lambda: [0.02, 0.05, 0.1])
    count: int = 10


@dataclass
class RelaxConfig:
    """Relaxation trajectories from strongly rattled starts (Gardner et al. 2025 family trees)."""

    enabled: bool = True
    rattle_sigma: float = 0.15
    fmax: float = 0.05
    steps: int = 60
    interval: int = 3
    repeats: int = 1


@dataclass
class GenerateConfig:
    """Teacher-driven data generation."""

    teacher: str = "gfn2-xtb"
    teacher_options: dict[str, Any] = field(default_factory=dict)
    seeds: list[str] = field(default_factory=lambda: ["CH3CH2OH"])
    holdout_molecules: list[str] = field(default_factory=list)
    output: str = "data/run"
    prerelax_steps: int = 100
    md: MDConfig = field(default_factory=MDConfig)
    rattle: RattleConfig = field(default_factory=RattleConfig)
    relax: RelaxConfig = field(default_factory=RelaxConfig)
    dedupe_tol: float = 0.01
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    workers: int = 1
    seed: int = 0


@dataclass
class TrainConfig:
    """Student training."""

    dataset: str = "data/run/dataset.xyz"
    output: str = "runs/student"
    size: str = "tiny"
    architecture: dict[str, Any] = field(default_factory=dict)
    epochs: int = 100
    batch_size: int = 16
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.0
    energy_weight: float = 1.0
    forces_weight: float = 10.0
    stress_weight: float = 1.0
    ema_decay: float = 0.995
    grad_clip: float = 10.0
    patience: int = 30
    seed: int = 0
    threads: int = 0
    max_steps_per_epoch: int = 0
    max_force: float = 0.0
    name: str = ""
    device: str = "cpu"


@dataclass
class RunConfig:
    """A whole reproducible run."""

    generate: GenerateConfig = field(default_factory=GenerateConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def _build(cls, data: dict[str, Any], where: str):
    if not isinstance(data, dict):
        raise ValueError(f"Config section {where or 'root'} must be a mapping, got {data!r}.")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(
            f"Unknown config key(s) {', '.join(f'{where}{k}' for k in unknown)}; known keys in "
            f"{where or 'the top level'}: {', '.join(known)}."
        )
    kwargs = {}
    for name, value in data.items():
        f = known[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            kwargs[name] = _build(type(default), value, f"{where}{name}.")
        else:
            kwargs[name] = value
    return cls(**kwargs)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML or TOML run config and apply ``key.sub=value`` overrides.

    Raises:
        ValueError: unreadable file or unknown keys.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"Config file {path} not found.")
        text = path.read_text()
        try:
            data = tomllib.loads(text) if path.suffix == ".toml" else (yaml.safe_load(text) or {})
        except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"Config file {path} could not be parsed: {exc}") from exc
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"Override {item!r} must look like section.key=value.")
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return _build(RunConfig, data, "")


def to_dict(config: Any) -> dict[str, Any]:
    """Plain dict of a config dataclass (JSON-serialisable)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))
