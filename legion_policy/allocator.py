"""Keep freed memory in the training process instead of returning it to the kernel (glibc ``mallopt``).

A SAC update allocates and frees dozens of activation and gradient buffers of 64-512 KiB. glibc serves blocks above
its mmap threshold with fresh ``mmap`` pages and trims freed heap tops back to the kernel, so the next update faults
the same pages in again: 145 minor page faults per LEGION update on this machine's CPU. Raising the mmap and trim
thresholds (``M_MMAP_THRESHOLD``, ``M_TRIM_THRESHOLD``, as glibc's ``MALLOC_MMAP_THRESHOLD_`` /
``MALLOC_TRIM_THRESHOLD_`` environment variables do at start-up) makes the heap reuse its pages: 0 faults per update
after the first ones, 3-5 % faster updates (docs/performance.md). PyTorch's CPU tuning guide reaches the same with
jemalloc or TCMalloc; this needs no extra library. The cost: memory freed by the process stays mapped to it, which a
trainer holding a replay buffer for hours does not notice.
"""
from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc malloc.h
_ONE_GIB = 1 << 30


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds to 1 GiB for this process. Returns False (and changes nothing) where the C
    library is not glibc (e.g. musl, macOS) or refuses the setting."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _ONE_GIB)) and bool(mallopt(_M_TRIM_THRESHOLD, _ONE_GIB))
