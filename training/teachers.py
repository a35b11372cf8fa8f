"""Teachers: anything that gives energy and forces (and stress for periodic cells) for Atoms.

A :class:`Teacher` is described by a picklable :class:`TeacherSpec` so that slow teachers can be
rebuilt inside worker processes. Names understood by :func:`make_teacher`:

* ``gfn2-xtb``, ``gfn1-xtb``, ``ipea1-xtb``: semi-empirical tight binding through ``tblite``.
* ``orb-v3-conservative-inf-omat``, ``orb-v3-direct-20-omat``, ``orb-v2``, ...: any name that
  starts with ``orb`` and is no import path goes to Orb, which checks it against
  ``orb_models.forcefield.pretrained.ORB_PRETRAINED_MODELS`` when built. Options:
  ``weights_path`` (local file or URL), ``device``, ``precision``; ``random_weights=True`` builds
  the architecture untrained (tests, speed comparisons).
* ``sevennet-0``, ``sevennet-l3i5``: SevenNet foundation GNNs (weights in the ``sevenn`` wheel;
  stress on, no dispersion). Options: ``device``, ``threads``.
* ``emt``, ``tip3p``, ``lj``: ASE's cheap calculators (tests).
* ``package.module:Callable``: any ASE calculator class or factory by import path.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator


class TeacherError(ValueError):
    """The teacher failed or returned unusable (non-finite) labels."""


@dataclass(frozen=True)
class TeacherSpec:
    """How to build a teacher: a known name or an import path, plus options."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


class Teacher:
    """Labels structures with a wrapped ASE calculator.

    Args:
        spec: name and options (recorded in dataset metadata and model cards).
        factory: builds the ASE calculator (called lazily, once per process).
    """

    def __init__(self, spec: TeacherSpec, factory: Callable[[], Calculator]) -> None:
        self.spec = spec
        self._factory = factory
        self._calc: Calculator | None = None

    @property
    def name(self) -> str:
        """The teacher's name."""
        return self.spec.name

    @property
    def calculator(self) -> Calculator:
        """The underlying ASE calculator (built on first use)."""
        if self._calc is None:
            self._calc = self._factory()
        return self._calc

    def metadata(self) -> dict[str, Any]:
        """Name, options and package version, for dataset headers and model cards."""
        return {"name": self.spec.name, "options": dict(self.spec.options), **self._version()}

    def _version(self) -> dict[str, str]:
        return {}

    @contextlib.contextmanager
    def _isolated(self) -> Iterator[None]:
        yield

    def label(self, atoms: Atoms) -> Atoms:
        """Return a copy of ``atoms`` with ``info['energy']``, ``arrays['forces']`` (and stress).

        Raises:
            TeacherError: non-finite positions or cell (checked before the teacher runs), the
                calculator raised, or it returned NaN / inf.
        """
        if not np.isfinite(atoms.positions).all() or not np.isfinite(atoms.cell[:]).all():
            raise TeacherError(
                f"refusing to label a structure with NaN or infinite positions or cell "
                f"(teacher {self.name}): the MD or rattle that produced it diverged."
            )
        frame = atoms.copy()
        frame.calc = None
        work = atoms.copy()
        work.calc = self.calculator
        try:
            with self._isolated():
                energy = float(work.get_potential_energy())
                forces = np.array(work.get_forces(), dtype=np.float64)
                stress = np.array(work.get_stress(voigt=True)) if work.pbc.all() else None
        except TeacherError:
            raise
        except Exception as exc:
            raise TeacherError(f"teacher {self.name} failed: {type(exc).__name__}: {exc}") from exc
        if not (np.isfinite(energy) and np.isfinite(forces).all()):
            raise TeacherError(f"teacher {self.name} returned non-finite energy or forces")
        if stress is not None and not np.isfinite(stress).all():
            raise TeacherError(f"teacher {self.name} returned a non-finite stress")
        frame.info["energy"] = energy
        frame.arrays["forces"] = forces
        if stress is not None:
            frame.info["stress"] = stress
        return frame


class XTBTeacher(Teacher):
    """GFN-xTB through tblite; one OpenMP thread unless ``omp_threads`` says otherwise."""

    def _version(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"package": "tblite", "version": version("tblite")}


def _xtb_factory(method: str, options: dict[str, Any]) -> Callable[[], Calculator]:
    def build() -> Calculator:
        # tblite's OpenMP collapses when cores are shared (several workers, a training run):
        # unless the user chose a thread count, a teacher process uses one thread. Only teacher
        # processes (CLI, workers) get here; the runtime package never touches the environment.
        os.environ.setdefault("OMP_NUM_THREADS", str(options.get("omp_threads", 1)))
        try:
            from tblite.ase import TBLite
        except ImportError as exc:
            raise TeacherError(
                "GFN-xTB teacher needs tblite: `pip install ase-distill[xtb]`."
            ) from exc
        kwargs = {k: v for k, v in options.items() if k not in {"omp_threads"}}
        return TBLite(method=method, verbosity=0, **kwargs)

    return build


class SevenNetTeacher(Teacher):
    """SevenNet (``sevenn``): weights from the wheel, plain model (no D3 dispersion add-on).

    Energies, forces and the stress (periodic cells) come from sevenn's own calculator, which
    evaluates the E(3)-equivariant network in float32. Options: ``device`` (default ``cpu``),
    ``threads`` (torch threads of a teacher process, default 1).
    """

    def _version(self) -> dict[str, str]:
        from importlib.metadata import version

        return {
            "package": "sevenn",
            "version": version("sevenn"),
            "model": _SEVENNET[self.spec.name],
            "dispersion": "none",
            "is_orb": "no",
        }


def _sevennet_factory(name: str, options: dict[str, Any]) -> Callable[[], Calculator]:
    def build() -> Calculator:
        try:
            import torch
            from sevenn.calculator import SevenNetCalculator
        except ImportError as exc:
            raise TeacherError(
                "SevenNet teachers need sevenn: `pip install ase-distill[sevennet]`."
            ) from exc
        torch.set_num_threads(int(options.get("threads", 1)))  # a teacher process's own threads
        return SevenNetCalculator(model=_SEVENNET[name], device=options.get("device", "cpu"))

    return build


class OrbTeacher(Teacher):
    """Orb (orb-models) with its own dtype isolated from the caller's process defaults.

    orb-models' loaders call ``torch.set_default_dtype`` and ``set_float32_matmul_precision``;
    we set what Orb needs only while Orb runs and restore the caller's values afterwards.
    """

    def __init__(self, spec: TeacherSpec) -> None:
        super().__init__(spec, self._build)
        self._dtype = None

    def _version(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"package": "orb-models", "version": version("orb-models")}

    @contextlib.contextmanager
    def _isolated(self) -> Iterator[None]:
        import torch

        dtype, precision = torch.get_default_dtype(), torch.get_float32_matmul_precision()
        try:
            if self._dtype is not None:
                torch.set_default_dtype(self._dtype)
            yield
        finally:
            torch.set_default_dtype(dtype)
            torch.set_float32_matmul_precision(precision)

    def _build(self) -> Calculator:
        import torch

        try:
            from orb_models.forcefield import pretrained
            from orb_models.forcefield.calculator import ORBCalculator
        except ImportError as exc:
            raise TeacherError(
                "Orb teacher needs orb-models: `pip install ase-distill[orb]`."
            ) from exc
        opts = dict(self.spec.options)
        name = self.spec.name
        device = opts.pop("device", "cpu")
        precision = opts.pop("precision", "float32-high")
        weights_path = opts.pop("weights_path", None)
        random_weights = bool(opts.pop("random_weights", False))
        arch_kwargs = opts.pop("architecture", {})
        if opts:
            raise ValueError(f"Unknown Orb teacher options {sorted(opts)}.")
        if name not in pretrained.ORB_PRETRAINED_MODELS:
            raise ValueError(
                f"Unknown Orb model {name!r}; orb-models knows "
                f"{', '.join(sorted(pretrained.ORB_PRETRAINED_MODELS))}."
            )
        dtype, matmul = torch.get_default_dtype(), torch.get_float32_matmul_precision()
        try:
            if random_weights:
                model = _orb_random_architecture(name, device, arch_kwargs)
                if precision == "float64":
                    model = model.double()
            else:
                loader = pretrained.ORB_PRETRAINED_MODELS[name]
                kwargs = {"device": device, "precision": precision, "compile": False}
                if weights_path is not None:
                    kwargs["weights_path"] = str(weights_path)
                try:
                    model = loader(**kwargs)
                except Exception as exc:
                    raise TeacherError(
                        f"Could not load Orb weights for {name!r} ({type(exc).__name__}: {exc}). "
                        "Without internet, download the checkpoint elsewhere and pass "
                        "teacher_options: {weights_path: /path/to/model.ckpt}."
                    ) from exc
            self._dtype = torch.float64 if precision == "float64" else torch.float32
        finally:
            torch.set_default_dtype(dtype)
            torch.set_float32_matmul_precision(matmul)
        return ORBCalculator(model, device=device)


def _orb_random_architecture(name: str, device: str, arch_kwargs: dict[str, Any]):
    """The named Orb architecture with untrained weights (real compute cost, no download)."""
    import torch
    from orb_models.forcefield import pretrained
    from orb_models.forcefield.atomic_system import SystemConfig

    radius_neighbors = {"20": 20, "inf": 120}
    parts = name.split("-")
    max_neighbors = next((radius_neighbors[p] for p in parts if p in radius_neighbors), 20)
    system_config = SystemConfig(radius=6.0, max_num_neighbors=max_neighbors)
    arch_kwargs = dict(arch_kwargs)
    torch.manual_seed(int(arch_kwargs.pop("seed", 0)))
    if "conservative" in name:
        builder = pretrained.orb_v3_conservative_architecture
    elif "direct" in name:
        builder = pretrained.orb_v3_direct_architecture
    else:
        builder = pretrained.orb_v2_architecture
        return builder(device=device, **arch_kwargs)
    return builder(device=device, system_config=system_config, **arch_kwargs)


_ASE_CHEAP = {
    "emt": "ase.calculators.emt:EMT",
    "tip3p": "ase.calculators.tip3p:TIP3P",
    "lj": "ase.calculators.lj:LennardJones",
    # other universal potentials whose weights ship in their wheels
    "chgnet": "chgnet.model.dynamics:CHGNetCalculator",
}
#: SevenNet models whose weights ship in the ``sevenn`` wheel (name -> sevenn's model key).
_SEVENNET = {"sevennet-0": "7net-0", "sevennet-l3i5": "7net-l3i5"}
_XTB = {"gfn2-xtb": "GFN2-xTB", "gfn1-xtb": "GFN1-xTB", "ipea1-xtb": "IPEA1-xTB"}


def _orb_names() -> list[str]:
    try:
        from orb_models.forcefield.pretrained import ORB_PRETRAINED_MODELS
    except Exception:  # orb-models missing or failing to import: still list the main names
        return ["orb-v3-conservative-inf-omat", "orb-v3-direct-20-omat", "orb-v2"]
    return sorted(ORB_PRETRAINED_MODELS)


def known_teachers() -> list[str]:
    """Teacher names :func:`make_teacher` accepts (besides ``module:Callable`` import paths)."""
    return sorted(_XTB) + sorted(_SEVENNET) + sorted(_ASE_CHEAP) + _orb_names()


def _import_path(path: str) -> Callable[..., Calculator]:
    module, _, attr = path.partition(":")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"Cannot import teacher {path!r}: {exc}.") from exc
    return obj


def is_torch_teacher(name: str) -> bool:
    """Whether a named teacher is a torch model that takes a ``device`` option (SevenNet, Orb)."""
    key = name.strip().lower()
    return key in _SEVENNET or (key.startswith("orb") and ":" not in key)


def make_teacher(spec: TeacherSpec | str | Calculator, **options: Any) -> Teacher:
    """Build a teacher from a name, an import path, a spec, or an ASE calculator object.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    if isinstance(spec, Calculator):
        calc = spec
        return Teacher(TeacherSpec(type(calc).__name__, options), lambda: calc)
    if isinstance(spec, str):
        spec = TeacherSpec(spec, options)
    name = spec.name.strip()
    key = name.lower()
    if key in _XTB:
        return XTBTeacher(spec, _xtb_factory(_XTB[key], spec.options))
    if key in _SEVENNET:
        spec = TeacherSpec(key, spec.options)
        return SevenNetTeacher(spec, _sevennet_factory(key, spec.options))
    if key.startswith("orb") and ":" not in name:  # "orbital.calc:X" is an import path
        return OrbTeacher(TeacherSpec(key, spec.options))
    if key in _ASE_CHEAP or ":" in name:
        target = _import_path(_ASE_CHEAP.get(key, name))
        return Teacher(spec, lambda: target(**spec.options))
    raise ValueError(
        f"Unknown teacher {name!r}. Known teachers: {', '.join(known_teachers())}; or give an ASE "
        "calculator by import path, e.g. 'ase.calculators.emt:EMT'."
    )
