"""Run configuration: one YAML/TOML file with ``generate`` and ``train`` sections.

Every field has a default; unknown keys are errors (a typo must not silently fall back to a
default). Command-line flags override file values (``--set train.epochs=50``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


class ConfigError(ValueError):
    """A config value has the wrong type or an impossible value (the message names the key)."""


Rule = tuple[Callable[[Any], bool], str]
POSITIVE: Rule = (lambda x: x > 0, "> 0")
NON_NEGATIVE: Rule = (lambda x: x >= 0, ">= 0")
AT_LEAST_ONE: Rule = (lambda x: x >= 1, ">= 1")
FRACTION: Rule = (lambda x: 0 <= x < 1, "in [0, 1)")


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """``value`` as the annotated type (int -> float allowed); ``ConfigError`` otherwise."""
    origin = typing.get_origin(hint)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"Config key {key} must be a list, got {value!r}.")
        (inner,) = typing.get_args(hint)
        return [_coerce(v, inner, f"{key}[{k}]") for k, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"Config key {key} must be a mapping, got {value!r}.")
        return value
    names = {float: "a number", int: "an integer", str: "a string", bool: "true or false"}
    ok = isinstance(value, hint) and not (hint is not bool and isinstance(value, bool))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if hint is int and isinstance(value, float) and value.is_integer():
        value, ok = int(value), True
    if not ok:
        raise ConfigError(f"Config key {key} must be {names.get(hint, hint)}, got {value!r}.")
    if hint is float and not math.isfinite(value):
        raise ConfigError(f"Config key {key} must be finite, got {value!r}.")
    return value


class Checked:
    """Mixin: types and value rules of every field are checked when the config is built.

    ``SECTION`` is the key prefix used in messages (``train.``); ``RULES`` maps a field to a
    (predicate, description) pair, applied to each element of a list field.
    """

    SECTION: ClassVar[str] = ""
    RULES: ClassVar[dict[str, Rule]] = {}

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            key = f"{self.SECTION}{f.name}"
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                continue
            value = _coerce(value, hints[f.name], key)
            object.__setattr__(self, f.name, value)
            rule = self.RULES.get(f.name)
            if rule is None:
                continue
            check, text = rule
            for item in value if isinstance(value, list) else [value]:
                if not check(item):
                    raise ConfigError(f"Config key {key} must be {text}, got {value!r}.")


@dataclass
class MDConfig(Checked):
    """Teacher-driven Langevin MD per seed and temperature."""

    temperatures: list[float] = field(default_factory=lambda: [300.0, 600.0])
    steps: int = 400
    interval: int = 10
    timestep_fs: float = 0.5
    friction_per_fs: float = 0.01
    repeats: int = 1

    SECTION: ClassVar[str] = "generate.md."
    RULES: ClassVar[dict[str, Rule]] = {
        "temperatures": POSITIVE,
        "steps": NON_NEGATIVE,
        "interval": AT_LEAST_ONE,
        "timestep_fs": POSITIVE,
        "friction_per_fs": NON_NEGATIVE,
        "repeats": NON_NEGATIVE,
    }


@dataclass
class RattleConfig(Checked):
    """Random Gaussian displacements of the (pre-relaxed) seed."""

    sigmas: list[float] = field(default_factory=lambda: [0.02, 0.05, 0.1])
    count: int = 10

    SECTION: ClassVar[str] = "generate.rattle."
    RULES: ClassVar[dict[str, Rule]] = {"sigmas": POSITIVE, "count": NON_NEGATIVE}


@dataclass
class RelaxConfig(Checked):
    """Relaxation trajectories from strongly rattled starts (Gardner et al. 2025 family trees)."""

    enabled: bool = True
    rattle_sigma: float = 0.15
    fmax: float = 0.05
    steps: int = 60
    interval: int = 3
    repeats: int = 1

    SECTION: ClassVar[str] = "generate.relax."
    RULES: ClassVar[dict[str, Rule]] = {
        "rattle_sigma": NON_NEGATIVE,
        "fmax": POSITIVE,
        "steps": NON_NEGATIVE,
        "interval": AT_LEAST_ONE,
        "repeats": NON_NEGATIVE,
    }


@dataclass
class StrainConfig(Checked):
    """Random cell deformations of periodic seeds (normal and shear strain), then a rattle."""

    count: int = 0
    max_strain: float = 0.05
    rattle_sigma: float = 0.02

    SECTION: ClassVar[str] = "generate.strain."
    RULES: ClassVar[dict[str, Rule]] = {
        "count": NON_NEGATIVE,
        "max_strain": (lambda x: 0 <= x < 0.5, "in [0, 0.5)"),
        "rattle_sigma": NON_NEGATIVE,
    }


@dataclass
class GenerateConfig(Checked):
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
    strain: StrainConfig = field(default_factory=StrainConfig)
    dedupe_tol: float = 0.01
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    workers: int = 1
    executor: str = "process"
    scheduler: str = ""
    seed: int = 0

    SECTION: ClassVar[str] = "generate."
    RULES: ClassVar[dict[str, Rule]] = {
        "prerelax_steps": NON_NEGATIVE,
        "dedupe_tol": NON_NEGATIVE,
        "validation_fraction": FRACTION,
        "test_fraction": FRACTION,
        "workers": AT_LEAST_ONE,
        "executor": (lambda x: x in ("process", "dask"), "'process' or 'dask'"),
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.validation_fraction + self.test_fraction >= 1:
            raise ConfigError(
                "Config keys generate.validation_fraction + generate.test_fraction must be < 1 "
                f"(training needs frames), got {self.validation_fraction + self.test_fraction}."
            )


@dataclass
class TrainConfig(Checked):
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
    select_on_train: bool = False
    dtype: str = "float32"

    SECTION: ClassVar[str] = "train."
    RULES: ClassVar[dict[str, Rule]] = {
        "epochs": AT_LEAST_ONE,
        "batch_size": AT_LEAST_ONE,
        "lr": POSITIVE,
        "min_lr": NON_NEGATIVE,
        "weight_decay": NON_NEGATIVE,
        "energy_weight": NON_NEGATIVE,
        "forces_weight": NON_NEGATIVE,
        "stress_weight": NON_NEGATIVE,
        "ema_decay": FRACTION,
        "grad_clip": POSITIVE,
        "patience": AT_LEAST_ONE,
        "threads": NON_NEGATIVE,
        "max_steps_per_epoch": NON_NEGATIVE,
        "max_force": NON_NEGATIVE,
        "dtype": (lambda x: x in ("float32", "float64"), "float32 or float64"),
    }


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
    return cls(**kwargs)  # __post_init__ checks types and values, naming the key


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML or TOML run config and apply ``key.sub=value`` overrides.

    Raises:
        ValueError: unreadable file or unknown keys; :class:`ConfigError` (a ValueError) for a
            value of the wrong type or out of range (negative temperature, zero epochs, ...).
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
