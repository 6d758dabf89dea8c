"""glibc allocator settings for the engine process: keep the memory of one batch for the next.

Every batch allocates and frees temporary arrays of tens of megabytes. By default glibc serves
those with ``mmap`` and gives them back to the kernel on ``free``, so the next batch faults the
same amount of memory in again and the kernel zeroes every page: at a million terminals that was
about 40 % of the engine's CPU time (system time). Serving them from the heap and not trimming
it makes the steady state fault-free; the price is that the process keeps its peak heap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# mallopt(3) parameters (glibc malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
TRIM_THRESHOLD = 2**31 - 1
"""Free memory at the top of the heap kept up to this size (mallopt takes an int)."""
DEFAULT_MMAP_MAX, DEFAULT_TRIM_THRESHOLD = 65_536, 128 * 1024


def keep_freed_memory(keep: bool = True) -> bool:
    """Ask glibc to serve large blocks from the heap and keep freed memory; False where unsupported.

    ``keep=False`` goes back to glibc's defaults (the benchmark prepares its input data that way).
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (musl has no mallopt), or no libc found
        log.info("allocator tuning unavailable (libc %s)", name)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    mmap_max, trim = (0, TRIM_THRESHOLD) if keep else (DEFAULT_MMAP_MAX, DEFAULT_TRIM_THRESHOLD)
    return bool(mallopt(M_MMAP_MAX, mmap_max)) and bool(mallopt(M_TRIM_THRESHOLD, trim))
