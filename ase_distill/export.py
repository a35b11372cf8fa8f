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

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from ase_distill.graph import atoms_to_graph
from ase_distill.model import ConservativePotential, StudentModel

CARD_KEY = "model_card.json"
ONNX_INPUTS = ["positions", "numbers", "cell", "batch", "edge_index", "edge_shift"]
FORMATS = ("torchscript", "onnx")


def export_torchscript(
    model: StudentModel, path: str | os.PathLike, card: dict[str, Any], dtype=torch.float64
) -> Path:
    """Script ``ConservativePotential(model)`` and save it with the card as an extra file."""
    potential = ConservativePotential(_copy(model, dtype))
    scripted = torch.jit.script(potential)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scripted.save(
        str(path),
        _extra_files={CARD_KEY: json.dumps(_export_card(card, model, "torchscript", dtype))},
    )
    return path


def load_torchscript(path: str | os.PathLike) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Load an exported TorchScript student and its model card."""
    extra = {CARD_KEY: ""}
    module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    if not extra[CARD_KEY]:
        raise ValueError(f"{path} carries no model card: it was not exported by ase-distill.")
    return module, json.loads(extra[CARD_KEY])


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
    """Export energy and forces (backward pass included) to ONNX with dynamic sizes."""
    from torch._decomp import core_aten_decompositions
    from torch.fx.experimental.proxy_tensor import make_fx

    try:
        import onnx
    except ImportError as exc:
        raise ValueError("ONNX export needs `pip install ase-distill[export]`.") from exc
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
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
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
    """``ase-distill export``: write a student as TorchScript or ONNX."""
    from ase_distill.calculator import _load_any

    model, card = _load_any(args.student)
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    if args.format == "torchscript":
        path = export_torchscript(model, args.output, card, dtype)
    else:
        path = export_onnx(model, args.output, card, dtype)
    print(f"exported {args.student} as {args.format} ({args.dtype}) -> {path}")
    return 0
