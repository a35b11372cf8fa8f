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


def one_of(*choices: str) -> Rule:
    """A rule accepting only ``choices``."""
    return (lambda x: x in choices, " or ".join(repr(c) for c in choices))


def option(default: Any = dataclasses.MISSING, rule: Rule | None = None, factory=None) -> Any:
    """A config field with its value rule (checked by :class:`Checked`)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"rule": rule})
    return field(default=default, metadata={"rule": rule})


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

    ``SECTION`` is the key prefix used in messages (``train.``); a field's rule (see
    :func:`option`) is a (predicate, description) pair, applied to each element of a list.
    """

    SECTION: ClassVar[str] = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            key = f"{self.SECTION}{f.name}"
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                continue
            value = _coerce(value, hints[f.name], key)
            object.__setattr__(self, f.name, value)
            rule = f.metadata.get("rule")
            if rule is None:
                continue
            check, text = rule
            for item in value if isinstance(value, list) else [value]:
                if not check(item):
                    raise ConfigError(f"Config key {key} must be {text}, got {value!r}.")


@dataclass
class MDConfig(Checked):
    """Teacher-driven Langevin MD per seed and temperature."""

    temperatures: list[float] = option(rule=POSITIVE, factory=lambda: [300.0, 600.0])
    steps: int = option(400, NON_NEGATIVE)
    interval: int = option(10, AT_LEAST_ONE)
    timestep_fs: float = option(0.5, POSITIVE)
    friction_per_fs: float = option(0.01, NON_NEGATIVE)
    repeats: int = option(1, NON_NEGATIVE)

    SECTION: ClassVar[str] = "generate.md."


@dataclass
class RattleConfig(Checked):
    """Random Gaussian displacements of the (pre-relaxed) seed."""

    sigmas: list[float] = option(rule=POSITIVE, factory=lambda: [0.02, 0.05, 0.1])
    count: int = option(10, NON_NEGATIVE)

    SECTION: ClassVar[str] = "generate.rattle."


@dataclass
class RelaxConfig(Checked):
    """Relaxation trajectories from strongly rattled starts (Gardner et al. 2025 family trees)."""

    enabled: bool = True
    rattle_sigma: float = option(0.15, NON_NEGATIVE)
    fmax: float = option(0.05, POSITIVE)
    steps: int = option(60, NON_NEGATIVE)
    interval: int = option(3, AT_LEAST_ONE)
    repeats: int = option(1, NON_NEGATIVE)

    SECTION: ClassVar[str] = "generate.relax."


@dataclass
class StrainConfig(Checked):
    """Random cell deformations of periodic seeds (normal and shear strain), then a rattle."""

    count: int = option(0, NON_NEGATIVE)
    max_strain: float = option(0.05, (lambda x: 0 <= x < 0.5, "in [0, 0.5)"))
    rattle_sigma: float = option(0.02, NON_NEGATIVE)

    SECTION: ClassVar[str] = "generate.strain."


@dataclass
class TreeConfig(Checked):
    """Rattle-relax family trees per seed (``training.family_tree``); 0 children turns them off."""

    children: int = option(0, NON_NEGATIVE)
    temperature_K: float = option(300.0, POSITIVE)
    max_relax_steps: int = option(8, NON_NEGATIVE)
    sigma_max: float = option(0.15, POSITIVE)

    SECTION: ClassVar[str] = "generate.tree."


@dataclass
class ComplexConfig(Checked):
    """Non-covalent complexes per seed: H-bonded or stacked dimers, or the seed with waters.

    Each complex is built at every separation (closest contact in A; stacked dimers add 1.4 A
    to reach ring-to-ring gaps) and labelled as built and once rattled by ``rattle_sigma``.
    """

    count: int = option(0, NON_NEGATIVE)
    separations: list[float] = option(rule=POSITIVE, factory=lambda: [1.8, 2.3, 3.0, 4.0])
    max_waters: int = option(8, AT_LEAST_ONE)
    rattle_sigma: float = option(0.03, NON_NEGATIVE)

    SECTION: ClassVar[str] = "generate.complexes."


@dataclass
class GenerateConfig(Checked):
    """Teacher-driven data generation."""

    teacher: str = "gfn2-xtb"
    teacher_options: dict[str, Any] = field(default_factory=dict)
    seeds: list[str] = field(default_factory=lambda: ["CH3CH2OH"])
    # a molecule library (``python -m training.chemistry``): every entry is a seed, by name
    library: str = ""
    # only the first N entries of the library (0: all); the library lists recombinations last
    library_size: int = option(0, NON_NEGATIVE)
    # MD runs of a SMILES seed start from different ETKDG conformers (up to this many)
    conformers: int = option(1, AT_LEAST_ONE)
    holdout_molecules: list[str] = field(default_factory=list)
    output: str = "data/run"
    prerelax_steps: int = option(100, NON_NEGATIVE)
    md: MDConfig = field(default_factory=MDConfig)
    rattle: RattleConfig = field(default_factory=RattleConfig)
    relax: RelaxConfig = field(default_factory=RelaxConfig)
    strain: StrainConfig = field(default_factory=StrainConfig)
    tree: TreeConfig = field(default_factory=TreeConfig)
    complexes: ComplexConfig = field(default_factory=ComplexConfig)
    dedupe_tol: float = option(0.01, NON_NEGATIVE)
    validation_fraction: float = option(0.1, FRACTION)
    test_fraction: float = option(0.1, FRACTION)
    workers: int = option(1, AT_LEAST_ONE)
    executor: str = option("process", one_of("process", "dask"))
    scheduler: str = ""
    seed: int = 0

    SECTION: ClassVar[str] = "generate."

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
    epochs: int = option(100, AT_LEAST_ONE)
    batch_size: int = option(16, AT_LEAST_ONE)
    lr: float = option(1e-3, POSITIVE)
    min_lr: float = option(1e-5, NON_NEGATIVE)
    weight_decay: float = option(0.0, NON_NEGATIVE)
    energy_weight: float = option(1.0, NON_NEGATIVE)
    forces_weight: float = option(10.0, NON_NEGATIVE)
    stress_weight: float = option(1.0, NON_NEGATIVE)
    # weight of the net force on each molecule (the intermolecular force that sets a molecular
    # liquid's structure, a small part of each atom's force); 0: not computed
    molecular_force_weight: float = option(0.0, NON_NEGATIVE)
    # weight of each atom's squared force error relative to its teacher force,
    # |dF|^2 / (|F|^2 + relative_force_floor^2): the direction of small forces (the mean angle
    # error), which the plain squared error leaves to the large ones; 0: not computed
    relative_force_weight: float = option(0.0, NON_NEGATIVE)
    relative_force_floor: float = option(0.5, POSITIVE)  # eV/A: caps a near-zero force's weight
    # weight of the squared ensemble energy gap per box (training/ensemble_gap.py): how the
    # student ranks the teacher's NVT frames against its own; 0: not computed
    ensemble_gap_weight: float = option(0.0, NON_NEGATIVE)
    ensemble_gap_frames: int = option(4, AT_LEAST_ONE)  # frames per ensemble, box and step
    ensemble_reference_kind: str = "teacher_nvt"  # frame info 'kind' of the teacher's ensemble
    ensemble_student_kind: str = "onpolicy"  # and of the student's own
    # weight of the structure term (training/structure_matching.py): the student's partial RDFs
    # in its own NVT, reweighted to the current parameters, against the teacher's; 0: off
    structure_weight: float = option(0.0, NON_NEGATIVE)
    structure_target: str = ""  # the teacher's frames: PATH[@START:STOP][+PATH...]
    structure_boxes: str = ""  # start frames of the student's NVT chains, one per box (same spec)
    structure_temperature: float = option(300.0, POSITIVE)  # K
    structure_equilibrate_ps: float = option(0.25, NON_NEGATIVE)  # per chain and epoch
    structure_sample_ps: float = option(1.25, POSITIVE)  # per chain and epoch, after that
    structure_interval: int = option(40, AT_LEAST_ONE)  # 0.5 fs steps between sampled frames
    structure_frames: int = option(40, AT_LEAST_ONE)  # frames reweighted per training step
    structure_min_ess: float = option(0.5, FRACTION)  # below it the term pauses till resampling
    # "reweighted": DiffTRe's estimate, paused below structure_min_ess; "local": the gradient at
    # the current parameters on the epoch's frames (96-atom boxes: one Adam step moves frame
    # energies by several kT, so reweighted estimates collapse within steps)
    structure_estimator: str = option("reweighted", one_of("reweighted", "local"))
    structure_intermolecular: bool = False  # match only pairs in different molecules (liquids)
    ema_decay: float = option(0.995, FRACTION)
    grad_clip: float = option(10.0, POSITIVE)
    patience: int = option(30, AT_LEAST_ONE)
    seed: int = 0
    threads: int = option(0, NON_NEGATIVE)
    max_steps_per_epoch: int = option(0, NON_NEGATIVE)
    max_force: float = option(0.0, NON_NEGATIVE)
    name: str = ""
    device: str = "cpu"
    select_on_train: bool = False
    dtype: str = option("float32", one_of("float32", "float64"))
    init_from: str = ""  # a student checkpoint (NAME.pt) whose weights start the run
    # with init_from: refit the per-element energy references to the new data's residuals
    refit_reference: bool = False
    # pick the best epoch on at most this many validation frames (a fixed random subset; 0: all)
    max_validation_frames: int = option(0, NON_NEGATIVE)
    # > 0: the validation split is this many whole training molecules, not random frames, so
    # that selection sees unseen chemistry (training.train.hold_out_molecules)
    validation_molecules: int = option(0, NON_NEGATIVE)
    # with validation_molecules: draw them only from molecules whose name matches this glob
    # ("x4*": a generation no earlier student saw, so that its offsets are unseen chemistry's)
    validation_molecule_pattern: str = "*"
    # the validation metric that picks the best epoch (energy: for an energy-weighted stage)
    select_metric: str = option(
        "force_rmse", one_of("force_rmse", "energy_mae_mev_per_atom", "force_angle_deg")
    )
    # also keep every epoch's EMA model as OUTPUT/epoch_NNN.pt (best.pt is still chosen by
    # select_metric): for stages whose real test is MD, not the validation frames
    keep_epochs: bool = False
    # stop after this many minutes of training (0: no limit); the cosine schedule then runs over
    # whichever ends first, the epochs or the minutes (a GPU lease, a cluster wall time)
    time_budget_minutes: float = option(0.0, NON_NEGATIVE)

    SECTION: ClassVar[str] = "train."


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
