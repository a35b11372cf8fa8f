"""Export students to TorchScript and ONNX, with the model card embedded as metadata.

* **TorchScript**: the whole :class:`~ase_distill.model.ConservativePotential` is scripted, so
  the file computes energy, forces (``torch.autograd.grad`` inside the script) and stress. Load
  it with ``DistilledCalculator.from_checkpoint("student.ts")``.
* **ONNX**: ONNX has no autograd, so we trace the forward *and* backward pass into one graph
  (``make_fx`` with core-ATen decompositions, symbolic shapes) and export that graph: the file
  maps (positions, numbers, cell, batch, edges, shifts) to (energy, forces) for any atom and edge
  count. :class:`OnnxCalculator` runs it with onnxruntime.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from ase_distill.checkpoint import CheckpointError, atomic_write_bytes
from ase_distill.graph import atoms_to_graph
from ase_distill.model import ConservativePotential, StudentModel

CARD_KEY = "model_card.json"
ONNX_INPUTS = ["positions", "numbers", "cell", "batch", "edge_index", "edge_shift"]


def check_writable(path: str | os.PathLike) -> Path:
    """Fail before any tracing if ``path`` cannot be written (export takes seconds to minutes)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=True):
            pass
    except OSError as exc:
        raise ValueError(
            f"Cannot write the export to {path} ({exc.strerror or exc}); choose a writable -o path."
        ) from exc
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a file name such as {path / 'student.ts'}.")
    return path


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 over the names, dtypes, shapes and bytes of a module's state, in order."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def export_torchscript(
    model: StudentModel, path: str | os.PathLike, card: dict[str, Any], dtype=torch.float64
) -> Path:
    """Script ``ConservativePotential(model)`` and save it with the card as an extra file.

    The card records a sha256 of the scripted weights that :func:`load_torchscript` checks.
    """
    path = check_writable(path)
    potential = ConservativePotential(_copy(model, dtype))
    scripted = torch.jit.script(potential)
    meta = _export_card(card, model, "torchscript", dtype)
    meta["export"]["weights_sha256"] = weights_digest(scripted)
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer, _extra_files={CARD_KEY: json.dumps(meta)})
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_torchscript(path: str | os.PathLike) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Load an exported TorchScript student and its model card (weights sha256-checked).

    Raises:
        CheckpointError: missing, truncated or corrupted file, no card, or changed weights.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"TorchScript file {path} not found.")
    extra = {CARD_KEY: ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path} is not a readable TorchScript file (truncated or corrupted?): "
            f"{str(exc).splitlines()[0]}. Export it again with `ase-distill export`."
        ) from exc
    if not extra[CARD_KEY]:
        raise CheckpointError(f"{path} carries no model card: it was not exported by ase-distill.")
    card = json.loads(extra[CARD_KEY])
    expected = card.get("export", {}).get("weights_sha256")
    if expected is not None and weights_digest(module) != expected:
        raise CheckpointError(
            f"The weights inside {path} do not match the sha256 recorded at export: the file "
            "was modified. Export it again with `ase-distill export`."
        )
    return module, card


class _EnergyForces(torch.nn.Module):
    """Tensor-in, (energy, forces)-out wrapper traced for ONNX."""

    def __init__(self, potential: ConservativePotential) -> None:
        super().__init__()
        self.potential = potential

    def forward(self, positions, numbers, cell, batch, edge_index, edge_shift):
        out = self.potential(positions, numbers, cell, batch, edge_index, edge_shift, None, 1)
        return out["energy"], out["forces"]


class _Replay(torch.nn.Module):
    """Holds the weights as buffers and replays the traced forward+backward graph."""

    def __init__(self, graph_module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.graph_module = graph_module
        self.keys = list(state)
        for i, value in enumerate(state.values()):
            self.register_buffer(f"w{i}", value)

    def forward(self, positions, numbers, cell, batch, edge_index, edge_shift):
        state = {k: getattr(self, f"w{i}") for i, k in enumerate(self.keys)}
        return self.graph_module(state, positions, numbers, cell, batch, edge_index, edge_shift)


def export_onnx(
    model: StudentModel,
    path: str | os.PathLike,
    card: dict[str, Any],
    dtype=torch.float64,
    example: Atoms | None = None,
) -> Path:
    """Export energy and forces (backward pass included) to ONNX with dynamic sizes.

    An atomic number the student does not know maps past the end of its embedding table, so
    onnxruntime raises an index error instead of returning another element's energy.
    """
    from torch._decomp import core_aten_decompositions
    from torch.fx.experimental.proxy_tensor import make_fx

    try:
        import onnx
    except ImportError as exc:
        raise ValueError("ONNX export needs `pip install ase-distill[export]`.") from exc
    check_writable(path)
    model = _copy(model, dtype)
    wrapper = _EnergyForces(ConservativePotential(model))
    if example is None:
        from ase.build import molecule

        example = molecule("C6H6") if 6 in model.species and 1 in model.species else None
        if example is None:
            from ase_distill.testing import random_molecule

            example = random_molecule(model, 6)
    graph = atoms_to_graph(example, model.cutoff, model.species, dtype=dtype)
    args = tuple(getattr(graph, name) for name in ONNX_INPUTS)
    state = {
        k: v.detach() for k, v in list(wrapper.named_parameters()) + list(wrapper.named_buffers())
    }

    def functional(state, *inputs):
        return torch.func.functional_call(wrapper, state, inputs)

    traced = make_fx(
        functional, tracing_mode="symbolic", decomposition_table=core_aten_decompositions()
    )(state, *args)
    atoms_dim, edges_dim = torch.export.Dim("atoms"), torch.export.Dim("edges")
    dynamic = {
        "positions": {0: atoms_dim},
        "numbers": {0: atoms_dim},
        "cell": None,
        "batch": {0: atoms_dim},
        "edge_index": {1: edges_dim},
        "edge_shift": {0: edges_dim},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    program = torch.onnx.export(
        _Replay(traced, state),
        args,
        dynamic_shapes=dynamic,
        dynamo=True,
        verbose=False,
        input_names=ONNX_INPUTS,
        output_names=["energy", "forces"],
        optimize=False,
    )
    program.save(str(path))
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key = CARD_KEY
    entry.value = json.dumps(_export_card(card, model, "onnx", dtype))
    onnx.save(proto, str(path))
    return path


def _copy(model: StudentModel, dtype) -> StudentModel:
    copy = StudentModel(model.config)
    copy.load_state_dict(model.state_dict())
    return copy.to(dtype).eval()


def _export_card(card: dict[str, Any], model: StudentModel, fmt: str, dtype) -> dict[str, Any]:
    out = dict(card)
    out.setdefault("architecture", model.config.to_dict())
    out["export"] = {
        "format": fmt,
        "dtype": str(dtype).replace("torch.", ""),
        "torch": torch.__version__,
    }
    return out


class OnnxCalculator(Calculator):
    """ASE calculator running an exported ONNX student with onnxruntime (energy, forces)."""

    implemented_properties = ["energy", "free_energy", "forces"]

    def __init__(self, path: str | os.PathLike, **kwargs: Any) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ValueError("OnnxCalculator needs `pip install ase-distill[export]`.") from exc
        super().__init__(**kwargs)
        path = Path(path)
        if path.suffix in (".ts", ".torchscript", ".pt", ".json"):
            raise ValueError(
                f"{path} is not an ONNX model; TorchScript files and checkpoints run in "
                "ase_distill.DistilledCalculator.from_checkpoint(path)."
            )
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ValueError(f"{path} is not a readable ONNX model: {exc}") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        if CARD_KEY not in meta:
            raise ValueError(f"{path} carries no model card: it was not exported by ase-distill.")
        self.card = json.loads(meta[CARD_KEY])
        arch = self.card["architecture"]
        self.species = tuple(arch["species"])
        self.cutoff = float(arch["cutoff"])
        self.dtype = torch.float64 if self.card["export"]["dtype"] == "float64" else torch.float32

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        """Energy and forces of ``atoms`` (stress is not exported)."""
        super().calculate(atoms, properties, system_changes)
        if "stress" in properties:
            raise PropertyNotImplementedError("ONNX students export energy and forces only.")
        graph = atoms_to_graph(self.atoms, self.cutoff, self.species, dtype=self.dtype)
        feeds = {name: getattr(graph, name).numpy() for name in ONNX_INPUTS}
        energy, forces = self.session.run(None, feeds)
        self.results["energy"] = float(np.sum(energy))
        self.results["free_energy"] = self.results["energy"]
        self.results["forces"] = np.asarray(forces, dtype=np.float64)


def export_cli(args) -> int:
    """``ase-distill export``: write a student as TorchScript, ONNX or a metatomic model."""
    from ase_distill.registry import resolve_student

    if getattr(args, "committee", None):
        return _export_committee(args)
    model, card = resolve_student(args.student)
    if not isinstance(model, StudentModel):
        raise ValueError(f"{args.student} is already exported; export a checkpoint or a name.")
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    if args.format == "torchscript":
        path = export_torchscript(model, args.output, card, dtype)
    elif args.format == "metatomic":
        try:
            from ase_distill.export_metatomic import export_metatomic
        except ImportError as exc:
            raise ValueError(str(exc)) from exc
        path = export_metatomic(model, args.output, card, dtype)
    else:
        path = export_onnx(model, args.output, card, dtype)
    print(f"exported {args.student} as {args.format} ({args.dtype}) -> {path}")
    return 0


def _export_committee(args) -> int:
    """``export --format metatomic --committee A B ...``: one file with energy_uncertainty."""
    from ase_distill.registry import resolve_student

    if args.format != "metatomic":
        raise ValueError("--committee exports a metatomic model: add --format metatomic.")
    try:
        from ase_distill.export_metatomic import committee_model
    except ImportError as exc:
        raise ValueError(str(exc)) from exc
    models = [resolve_student(name)[0] for name in args.committee]
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    path = check_writable(args.output)
    committee_model(models, list(args.committee), dtype).save(str(path))
    print(f"exported committee {', '.join(args.committee)} as metatomic ({args.dtype}) -> {path}")
    return 0
