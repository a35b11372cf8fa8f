"""Peak memory of one energy+forces call, estimated before the call.

Measured (``benchmarks``-style water boxes of 999 and 2,997 atoms; tiny, original and
ultra-tiny; float32 and float64, CPU): the peak resident memory of one energy+forces call is
64 x edges x features x bytes-per-float for the three-block students, within 2 %. Autograd keeps
every block's per-edge message tensors (edges x 3 x features) for the backward pass, which is
why the cost is per edge, per feature and per block: 64 / 3 ~ 21.3 bytes per float per block;
we use 22.

With edge chunks (the calculator's default for graphs above a few thousand edges) the per-edge
tensors exist for one chunk at a time, and the peak is set by the atoms instead; see
:data:`FLOATS_PER_ATOM_FEATURE_BLOCK`.
"""

from __future__ import annotations

import torch

BYTES_PER_EDGE_FEATURE_BLOCK = 22.0  # in units of the float size; see the module docstring
#: Chunked path: floats per atom, feature and block at the peak (the atom-wise tensors autograd
#: keeps, and their gradients). Measured: 75 for tiny, float32, water boxes of 10,000 and 30,000
#: atoms (peak resident memory of one call over the memory before it); we use 80.
FLOATS_PER_ATOM_FEATURE_BLOCK = 80.0
#: Bytes per edge of the graph itself (indices, shifts, the neighbour search's arrays).
BYTES_PER_EDGE_GRAPH = 96
#: Calls estimated below this are not checked (reading the free memory costs more than a small
#: molecule's whole call).
ALWAYS_FITS = 64 * 2**20
#: Target size of one per-edge tensor (edges x 3F) in the chunked path.
CHUNK_BYTES = 4 * 2**20
#: Graphs whose all-edges-at-once estimate is below this run unchunked: there the per-edge
#: tensors still fit the caches well enough (measured: equal cost per atom at 333 water atoms,
#: 17,634 edges), and many small molecules batched together keep the compiled path.
CHUNK_ABOVE_BYTES = 512 * 2**20
#: On a GPU the CPU-cache argument does not hold: 4 MiB chunks cost ~1,000 chunks per block at
#: 100,000 atoms and a step of 12 s on an H100 (``benchmarks/results/gpu/device_md_h100.json``,
#: mode ``ase``). There chunks are 256 MiB and chunking starts above an 8 GiB estimate.
GPU_CHUNK_BYTES = 256 * 2**20
GPU_CHUNK_ABOVE_BYTES = 8 * 2**30


def _on_gpu(device: torch.device | str | None) -> bool:
    return device is not None and torch.device(device).type == "cuda"


class MemoryLimitError(ValueError):
    """A call would need more memory than the device has free."""


def _itemsize(dtype: torch.dtype) -> int:
    return dtype.itemsize  # no allocation: this runs on every calculator call


def default_edge_chunk(features: int, dtype: torch.dtype, device=None) -> int:
    """Edges per chunk such that one ``edges x 3F`` tensor takes about :data:`CHUNK_BYTES`.

    On a CUDA ``device``: :data:`GPU_CHUNK_BYTES`. Why 4 MiB on a CPU: measured on water
    boxes with tiny, one thread, chunks of 1k-64k edges: tensors that stay in the CPU caches
    make the cost per atom flat from 333 to 10,000 atoms (exponent 1.0-1.05), where all edges
    at once cost 3.5x more per atom at 10,000 atoms than at 333.
    """
    target = GPU_CHUNK_BYTES if _on_gpu(device) else CHUNK_BYTES
    return max(256, target // (3 * features * _itemsize(dtype)))


def default_chunk_above(features: int, interactions: int, dtype: torch.dtype, device=None) -> int:
    """Edges above which graphs are chunked: where the unchunked estimate passes 512 MiB.

    On a CUDA ``device``: :data:`GPU_CHUNK_ABOVE_BYTES`.
    """
    per_edge = BYTES_PER_EDGE_FEATURE_BLOCK * interactions * features * _itemsize(dtype)
    limit = GPU_CHUNK_ABOVE_BYTES if _on_gpu(device) else CHUNK_ABOVE_BYTES
    return int(limit // per_edge)


def estimate_call_bytes(
    n_edges: int,
    features: int,
    interactions: int,
    dtype: torch.dtype,
    edge_chunk: int = 0,
    n_atoms: int = 0,
    device=None,
) -> int:
    """Estimated peak bytes of one energy+forces call on a graph of ``n_edges`` edges.

    Args:
        n_edges: edges of the graph.
        features: the student's feature width.
        interactions: its number of message blocks.
        dtype: evaluation precision.
        edge_chunk: edges per chunk (0: all at once, as the module docstring measures).
        n_atoms: atoms of the graph (used by the chunked estimate).
        device: where the call runs (a GPU chunks later, :func:`default_chunk_above`).
    """
    itemsize = _itemsize(dtype)
    above = max(edge_chunk, default_chunk_above(features, interactions, dtype, device))
    if edge_chunk <= 0 or n_edges <= above:
        per_edge = BYTES_PER_EDGE_FEATURE_BLOCK * interactions * features * itemsize
        return int(n_edges * per_edge)
    atoms = FLOATS_PER_ATOM_FEATURE_BLOCK * interactions * n_atoms * features * itemsize
    chunk = BYTES_PER_EDGE_FEATURE_BLOCK * edge_chunk * features * itemsize
    return int(atoms + chunk + BYTES_PER_EDGE_GRAPH * n_edges)


def available_bytes(device: torch.device) -> int | None:
    """Free memory on ``device`` (Linux MemAvailable for the CPU), or ``None`` if unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_memory(
    n_atoms: int, n_edges: int, features: int, interactions: int, dtype, device, edge_chunk=0
) -> None:
    """Refuse a call whose estimated peak exceeds the free memory, saying what to do."""
    need = estimate_call_bytes(n_edges, features, interactions, dtype, edge_chunk, n_atoms, device)
    if need < ALWAYS_FITS:
        return
    free = available_bytes(torch.device(device))
    if free is None or need <= free:
        return
    gib = 2**30
    hint = "use dtype=torch.float32 (half the memory), " if dtype == torch.float64 else ""
    if edge_chunk <= 0:
        hint = "turn edge chunking on (edge_chunk=None, the default), " + hint
    raise MemoryLimitError(
        f"This structure ({n_atoms} atoms, {n_edges} edges) needs about {need / gib:.1f} GiB for "
        f"one energy+forces call with this student, but only {free / gib:.1f} GiB are free on "
        f"{device}. To run it: {hint}a smaller student, or a machine with more memory."
    )
