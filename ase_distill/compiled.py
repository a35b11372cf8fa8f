"""Ahead-of-time compiled students: built once per machine, cached on disk, loaded in milliseconds.

Why: on a 24-atom molecule an eager student spends most of its time in ~1,200 small ATen calls
and autograd bookkeeping, not in arithmetic. :func:`compiled_potential` traces energy, forces
(and stress) as one graph (:func:`~ase_distill.model.functional_evaluate`, a function transform,
so the backward pass is explicit in the graph), exports it with dynamic atom and edge counts and
compiles it with AOTInductor into a ``.pt2`` package. The package is cached under
:func:`cache_dir`, keyed by the weights, the architecture, the precision, the torch version and
the CPU's vector ISA, so a later process (or an MD restart) loads it in a few milliseconds
instead of compiling again for 30-60 s.

Inductor inlines cheap producers into every consumer by default; here that recomputed the radial
basis and cutoff inside each per-edge loop and cost 2.5x. ``realize_opcount_threshold = 2``
(:data:`INDUCTOR_OPTIONS`; 1, 2 and 4 measured) keeps such intermediates in memory: 2.1 -> 0.77
ms per call for tiny on caffeine (float32, one thread). ``freezing`` folds the weights into
the package as constants: the same results (forces identical to the last bit in float32 and
float64), 2x faster compilation (31 vs 70 s) and about 5 % less time per call (measured with
the alternatives max-autotune GEMMs and 256-bit vectors, which did not help on this CPU).
``memory_planning`` gives each call one pooled allocation for all its intermediate tensors
instead of dozens: glibc served the float64 package's larger buffers (over 128 KB each on a
24-atom molecule) from freshly mapped, zeroed pages on every call, ~1,100 minor page faults per
calculator step (``benchmarks/page_faults.py``); pooled, none, and ``DistilledCalculator("tiny")``
on caffeine went from 5.2 to 3.1 ms per call (``benchmarks/results/small_large.json``). The
float32 package's buffers were small enough not to fault; its time is unchanged. These options
apply only while compiling.

With AVX-512, inductor's float64 kernels hold 16 lanes in ``at::vec::VectorizedN<double, 2>``.
Its ``loadu``/``store`` are small loops that GCC, at its default inlining budget for a large
translation unit, left as out-of-line calls: every vector load and store of a float64 kernel
was a function call (about a tenth of a float64 call's samples in ``perf``). The kernels are
therefore compiled with a larger inlining budget (:data:`GCC_INLINE_PARAMS`; both are needed,
checked with ``nm`` on the kernel object). With the radial backward of
:func:`~ase_distill.model.radial_linear`, the float64 package on caffeine went from 2.06 to 1.58
ms per call (median of interleaved blocks, ``python -m benchmarks.package_ab``); the float32
package is unchanged (0.69 ms).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from ase_distill.model import StudentModel, functional_evaluate

#: Inductor settings used while compiling (see the module docstring).
INDUCTOR_OPTIONS = {
    "realize_opcount_threshold": 2,
    "cpp.threads": 1,
    "freezing": True,
    "memory_planning": True,
}
#: GCC parameters for the kernels: inline the vector helpers of float64 kernels (docstring).
GCC_INLINE_PARAMS = ("--param=inline-unit-growth=2000", "--param=large-function-growth=2000")
#: Environment variable that moves the package cache (default ``~/.cache/ase-distill``).
CACHE_ENV = "ASE_DISTILL_CACHE"


class CompileError(ValueError):
    """A student could not be compiled here (no C++ compiler, unsupported torch)."""


def cache_dir() -> Path:
    """Package folder: ``$ASE_DISTILL_CACHE/aoti``, else ``~/.cache/ase-distill/aoti``."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "ase-distill"
    return Path(root) / "aoti"


class _EnergyForces(nn.Module):
    """One structure's energy, per-atom energies, forces (and stress) from plain tensors."""

    def __init__(self, model: StudentModel, stress: bool) -> None:
        super().__init__()
        self.model = model
        self.stress = stress

    def forward(self, positions, numbers, cell, edge_index, edge_shift):  # noqa: D102
        batch = torch.zeros_like(numbers)
        inputs = (positions, numbers, cell[None], batch, edge_index, edge_shift, None)
        out = functional_evaluate(self.model, inputs, self.stress)
        result = (out["energy"], out["energies"], out["forces"])
        return result + (out["stress"][0],) if self.stress else result


def _vector_isa() -> str:
    """The CPU vector instruction set inductor compiles for (part of the cache key)."""
    try:
        from torch._inductor.cpu_vec_isa import pick_vec_isa

        return str(pick_vec_isa())
    except Exception:  # noqa: BLE001 (older torch: the key just gets coarser)
        return "unknown"


#: The sources whose code is traced into a package: a change to any of them (an upgrade of
#: ase-distill, an edit) must not load a package compiled from the old code.
TRACED_SOURCES = ("model.py", "compiled.py", "graph.py", "ops/__init__.py", "ops/scatter.py")


def _code_hash() -> str:
    h = hashlib.sha256()
    root = Path(__file__).parent
    for name in TRACED_SOURCES:
        path = root / name
        h.update(name.encode())
        h.update(path.read_bytes() if path.is_file() else b"")
    return h.hexdigest()[:16]


def package_key(model: StudentModel, dtype: torch.dtype, stress: bool) -> str:
    """Hash of everything the compiled code depends on."""
    h = hashlib.sha256()
    meta = {
        "code": _code_hash(),
        "config": model.config.to_dict(),
        "dtype": str(dtype),
        "stress": stress,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "isa": _vector_isa(),
        "inductor": INDUCTOR_OPTIONS,
        "gcc": GCC_INLINE_PARAMS,
    }
    h.update(json.dumps(meta, sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        # rounded to the package's precision, as the package holds them: a float32 copy of a
        # model and its float64 original then find the same float32 package
        value = tensor.detach().cpu()
        value = value.to(dtype) if value.is_floating_point() else value
        h.update(name.encode())
        h.update(value.contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


def _example_inputs(model: StudentModel, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """A small molecule to trace with: 7 atoms, all pairs (42 edges), distinct sizes."""
    n = 7
    gen = torch.Generator().manual_seed(0)
    positions = torch.rand(n, 3, generator=gen, dtype=torch.float64) * 3.0
    numbers = torch.tensor([model.species[k % len(model.species)] for k in range(n)])
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    keep = i != j
    edge_index = torch.stack([i[keep], j[keep]])
    shift = torch.zeros(edge_index.shape[1], 3, dtype=dtype)
    return positions.to(dtype), numbers, torch.zeros(3, 3, dtype=dtype), edge_index, shift


def build_package(model: StudentModel, dtype: torch.dtype, stress: bool, path: Path) -> None:
    """Export and AOT-compile ``model`` into the package ``path`` (written atomically).

    Raises:
        CompileError: export or compilation failed (the message says why).
    """
    from torch.fx.experimental.proxy_tensor import make_fx

    module = _EnergyForces(model, stress)
    example = _example_inputs(model, dtype)
    atoms = torch.export.Dim("atoms", min=2, max=2**31 - 2)
    edges = torch.export.Dim("edges", min=1, max=2**40)
    dynamic = ({0: atoms}, {0: atoms}, None, {1: edges}, {0: edges})
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(suffix=".pt2", dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        # make_fx writes the function transform's backward out as plain ATen ops, which
        # torch.export then accepts (exporting torch.func.grad directly fails in torch 2.13).
        traced = make_fx(module, tracing_mode="symbolic", _allow_non_fake_inputs=True)(*example)
        exported = torch.export.export(traced, example, dynamic_shapes=dynamic, strict=False)
        with torch._inductor.config.patch(INDUCTOR_OPTIONS), _gcc_inline_params():
            torch._inductor.aoti_compile_and_package(exported, package_path=str(tmp))
        os.replace(tmp, path)
    except Exception as exc:
        raise CompileError(
            f"Could not compile the student ({type(exc).__name__}: {exc}). Compilation needs a "
            "C++ compiler (g++) and torch >= 2.6; use compile=False to run eagerly."
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)  # a failed or interrupted build leaves nothing behind


@contextmanager
def _gcc_inline_params() -> Iterator[None]:
    """Add :data:`GCC_INLINE_PARAMS` to inductor's optimisation flags while compiling.

    Inductor has no option for extra compiler flags, so its private flag function is wrapped
    for the duration and restored afterwards; with another torch (no such function) or another
    compiler the package is built as before, only its float64 kernels are slower.
    """
    from torch._inductor import cpp_builder

    original = getattr(cpp_builder, "_get_optimization_cflags", None)
    is_gcc = getattr(cpp_builder, "_is_gcc", None)
    if original is None or is_gcc is None:
        yield
        return

    def with_params(cpp_compiler, *args, **kwargs):
        cflags, ldflags = original(cpp_compiler, *args, **kwargs)
        if is_gcc(cpp_compiler):  # inductor prefixes each flag with "-"
            cflags = [*cflags, *(p[1:] for p in GCC_INLINE_PARAMS)]
        return cflags, ldflags

    cpp_builder._get_optimization_cflags = with_params
    try:
        yield
    finally:
        cpp_builder._get_optimization_cflags = original


def compiled_potential(
    model: StudentModel, dtype: torch.dtype, stress: bool, progress: bool = True, build=True
) -> Callable[..., tuple[torch.Tensor, ...]] | None:
    """The cached compiled energy/forces(/stress) function of ``model``, building it if needed.

    Args:
        model: the student (its device must be the CPU; it is copied, never changed).
        dtype: float32 or float64.
        stress: include the stress (fully periodic cells).
        progress: say on stderr that a one-off compilation is running.
        build: compile when no package is cached; with ``False``, return ``None`` instead.

    Returns:
        ``f(positions, numbers, cell (3, 3), edge_index, edge_shift)`` ->
        ``(energy (1,), energies (N,), forces (N, 3)[, stress (3, 3)])``, for any structure of
        at least 2 atoms and 1 edge.
    """
    path = cache_dir() / f"{package_key(model, dtype, stress)}.pt2"
    if not path.exists() and not build:
        return None
    if not path.exists():
        if progress:
            print(
                f"ase-distill: compiling the student once for this machine ({dtype}, "
                f"stress={stress}); cached in {path.parent}",
                file=sys.stderr,
            )
        frozen = copy.deepcopy(model).to("cpu", dtype).eval()
        frozen.edge_chunk = frozen.chunk_above = 0
        for p in frozen.parameters():
            p.requires_grad_(False)
        build_package(frozen, dtype, stress, path)
    return _direct_call(torch._inductor.aoti_load_package(str(path)))


def _direct_call(package) -> Callable[..., tuple[torch.Tensor, ...]]:
    """The package's runner without its per-call pytree work.

    ``AOTICompiledModel.__call__`` parses the input and output specs from JSON and flattens and
    unflattens them on every call, about a tenth of a small molecule's call; the inputs here are
    five tensors and the outputs a flat tuple, so the loader's runner is called directly.
    """
    loader = getattr(package, "loader", None)
    if loader is None or not hasattr(loader, "boxed_run"):  # another torch: the public call
        return package

    def call(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(loader.boxed_run(list(tensors)))

    return call
