"""The C allocator's settings for a long-running server (glibc only; elsewhere nothing).

Request bodies pass through worker threads as buffers of up to a few hundred KiB. glibc
raises its mmap threshold after the first such buffer is freed, from then on serves them
from per-thread heaps, and those heaps fragment: under sustained uploads the resident size
kept creeping up (bench/soak.py on the git backend: +20 % between minute 1 and minute 5).
A fixed threshold keeps large buffers mapped and gives them back when freed, and two arenas
for all threads keep the heaps few (the same as MALLOC_MMAP_THRESHOLD_=131072 and
MALLOC_ARENA_MAX=2 in the environment; with them: +5 %).
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 128 << 10
ARENA_MAX = 2


def tune() -> bool:
    """Apply the settings; False where the C library has no ``mallopt`` (not glibc)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        libc = None
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_ARENA_MAX, ARENA_MAX))
