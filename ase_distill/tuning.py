"""Opt-in process tuning for large systems on CPU (never applied on import or by the calculator).

Why: on Linux, glibc serves every allocation above 32 MB with a fresh ``mmap`` and returns it to
the kernel on free. A student's forward+backward on thousands of atoms allocates gigabytes of
such tensors per call, so every MD step pays for page faults on fresh, zeroed memory: 610,000
faults and ~3.5x the time per call on a 2,997-atom water box (``benchmarks/``). Keeping freed
memory in the heap removes that cost; the price is that the process keeps its peak memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def reuse_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of unmapping it (process-wide).

    Same effect as starting Python with ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=-1``
    (no ``mmap`` for large blocks, no trimming). Call it once, yourself, before long MD on large
    systems; it changes the whole process.

    Returns:
        ``True`` if applied; ``False`` where the C library is not glibc (nothing changed).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, -1))
