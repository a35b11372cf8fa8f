"""Aggregation primitives. The students call :func:`segment_sum` and nothing else."""

from ase_distill.ops.scatter import (
    BACKENDS,
    ENV_VAR,
    active_backend,
    available_backends,
    csr_offsets,
    segment_sum,
)

__all__ = [
    "BACKENDS",
    "ENV_VAR",
    "active_backend",
    "available_backends",
    "csr_offsets",
    "segment_sum",
]
