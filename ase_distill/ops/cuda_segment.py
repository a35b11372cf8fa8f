"""The project's deterministic CUDA segment sum, compiled on first use.

The extension (``csrc/segment_sum_kernel.cu`` + ``csrc/segment_sum_binding.cpp``) is built with
``torch.utils.cpp_extension.load`` the first time a CUDA tensor asks for it and cached in torch's
extension folder (``TORCH_EXTENSIONS_DIR``). Importing this module needs no compiler; on a CPU
machine :func:`is_available` is simply ``False``.

Autograd: the backward of a segment sum is a gather of the output gradient along the edges,
and the backward of that gather is again a segment sum, so :class:`SegmentSumCSR` and
:class:`GatherRows` call each other and the op is differentiable any number of times (force
training needs the double backward).
"""

from __future__ import annotations

import functools
import logging
import shutil
from pathlib import Path

import torch

log = logging.getLogger(__name__)

CSRC = Path(__file__).with_name("csrc")
SOURCES = [CSRC / "segment_sum_kernel.cu", CSRC / "segment_sum_binding.cpp"]


def nvcc_path() -> str | None:
    """Path of nvcc (CUDA_HOME or PATH), or ``None``."""
    from torch.utils.cpp_extension import CUDA_HOME

    if CUDA_HOME and (Path(CUDA_HOME) / "bin" / "nvcc").exists():
        return str(Path(CUDA_HOME) / "bin" / "nvcc")
    return shutil.which("nvcc")


@functools.lru_cache(maxsize=1)
def _extension():
    from torch.utils.cpp_extension import load

    return load(
        name="ase_distill_segment_sum",
        sources=[str(s) for s in SOURCES],
        extra_include_paths=[str(CSRC)],
        extra_cuda_cflags=["-O3", "--use_fast_math"],
        extra_cflags=["-O3"],
        verbose=False,
    )


@functools.lru_cache(maxsize=1)
def is_available() -> bool:
    """Whether the kernel can run here (a CUDA device, nvcc, and a successful build)."""
    if not torch.cuda.is_available() or nvcc_path() is None:
        return False
    try:
        _extension()
    except Exception as exc:  # build failure: fall back to torch, say why once
        log.warning("CUDA segment-sum kernel could not be built (%s); using torch.", exc)
        return False
    return True


def check_offsets(offsets: torch.Tensor, num_edges: int) -> None:
    """Raise ``ValueError`` unless ``offsets`` is a valid CSR row pointer for ``num_edges``."""
    if offsets.dim() != 1 or offsets.numel() < 1 or offsets.dtype != torch.long:
        raise ValueError("offsets must be a 1-D int64 CSR row pointer of length num_segments+1.")
    if int(offsets[0]) != 0 or int(offsets[-1]) != num_edges:
        raise ValueError(
            f"offsets must start at 0 and end at the number of edges ({num_edges}); got "
            f"{int(offsets[0])}..{int(offsets[-1])}."
        )
    if offsets.numel() > 1 and bool((offsets[1:] < offsets[:-1]).any()):
        raise ValueError(
            "offsets decrease: the edges are not sorted by receiver. Sort them (stable) by "
            "receiver and rebuild offsets with ase_distill.ops.csr_offsets."
        )


class SegmentSumCSR(torch.autograd.Function):
    """``out[s] = sum(src[offsets[s]:offsets[s+1]])`` with the CUDA kernel."""

    @staticmethod
    def forward(ctx, src, index, offsets):  # noqa: D102
        ctx.save_for_backward(index, offsets)
        with torch.cuda.device(src.device):
            stream = torch.cuda.current_stream(src.device).cuda_stream
            return _extension().segment_sum_csr(src, offsets, stream)

    @staticmethod
    def backward(ctx, grad_out):  # noqa: D102
        index, offsets = ctx.saved_tensors
        return GatherRows.apply(grad_out, index, offsets), None, None


class GatherRows(torch.autograd.Function):
    """``out[e] = x[index[e]]``; its backward is :class:`SegmentSumCSR`."""

    @staticmethod
    def forward(ctx, x, index, offsets):  # noqa: D102
        ctx.save_for_backward(index, offsets)
        return x.index_select(0, index)

    @staticmethod
    def backward(ctx, grad_out):  # noqa: D102
        index, offsets = ctx.saved_tensors
        return SegmentSumCSR.apply(grad_out, index, offsets), None, None


def segment_sum_csr(
    src: torch.Tensor,
    index: torch.Tensor,
    offsets: torch.Tensor,
    num_segments: int,
    validate: bool = True,
) -> torch.Tensor:
    """Deterministic segment sum of edges sorted by receiver (see module docs).

    Args:
        src: ``(E, ...)`` edge values.
        index: ``(E,)`` receiver of each edge, sorted ascending.
        offsets: CSR row pointer of ``index`` (``num_segments + 1``).
        num_segments: number of output rows.
        validate: check ``offsets`` (a device sync); the model skips it because
            :func:`ase_distill.ops.csr_offsets` already validated them once per graph.

    Raises:
        ValueError: offsets do not describe ``src`` (wrong length, unsorted edges).
    """
    if offsets.numel() != num_segments + 1:
        raise ValueError(
            f"offsets has {offsets.numel()} entries; expected num_segments + 1 = "
            f"{num_segments + 1}."
        )
    if validate:
        check_offsets(offsets, src.shape[0])
    if src.shape[0] == 0:  # no edges (isolated atoms): zeros, still connected to src's graph
        return src.new_zeros((num_segments,) + tuple(src.shape[1:])) + src.sum(0)
    return SegmentSumCSR.apply(src, index, offsets)
