"""Peak memory of one energy+forces call, estimated before the call.

Measured (``benchmarks``-style water boxes of 999 and 2,997 atoms; tiny, original and
ultra-tiny; float32 and float64, CPU): the peak resident memory of one energy+forces call is
64 x edges x features x bytes-per-float for the three-block students, within 2 %. Autograd keeps
every block's per-edge message tensors (edges x 3 x features) for the backward pass, which is
why the cost is per edge, per feature and per block: 64 / 3 ~ 21.3 bytes per float per block;
we use 22.
"""

from __future__ import annotations

import torch

BYTES_PER_EDGE_FEATURE_BLOCK = 22.0  # in units of the float size; see the module docstring


class MemoryLimitError(ValueError):
    """A call would need more memory than the device has free."""


def estimate_call_bytes(n_edges: int, features: int, interactions: int, dtype: torch.dtype) -> int:
    """Estimated peak bytes of one energy+forces call on a graph of ``n_edges`` edges."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    return int(BYTES_PER_EDGE_FEATURE_BLOCK * interactions * n_edges * features * itemsize)


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
    n_atoms: int, n_edges: int, features: int, interactions: int, dtype, device
) -> None:
    """Refuse a call whose estimated peak exceeds the free memory, saying what to do."""
    need = estimate_call_bytes(n_edges, features, interactions, dtype)
    free = available_bytes(torch.device(device))
    if free is None or need <= free:
        return
    gib = 2**30
    hint = "use dtype=torch.float32 (half the memory), " if dtype == torch.float64 else ""
    raise MemoryLimitError(
        f"This structure ({n_atoms} atoms, {n_edges} edges) needs about {need / gib:.1f} GiB for "
        f"one energy+forces call with this student, but only {free / gib:.1f} GiB are free on "
        f"{device}. To run it: {hint}a smaller student, or a machine with more memory."
    )
