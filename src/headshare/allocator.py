"""Keep freed memory inside the process, so that large arrays reuse pages instead of faulting in new ones.

glibc's malloc serves a block above its mmap threshold (128 KiB at first) with a fresh mmap and unmaps it
when it is freed, and hands the top of its heap back to the system once more than the trim threshold is
free. A job that allocates and frees arrays of a few MiB at every step (a sampler's beliefs, a training
step's activations) then pays page faults on every one of them: on a 2-core machine the vectorised HMM
sampler spent about 40% of its time faulting in the pages of its own output (benchmarks/sampler.py).
``keep_freed_memory`` raises both thresholds, so freed blocks stay in the heap and are reused. The cost is
that a process keeps its peak heap until it exits, which suits the pipeline's jobs.
"""

from __future__ import annotations

import ctypes
import platform

# mallopt parameters (malloc.h) and the values set.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest on 64-bit systems: larger blocks are still mapped
TRIM_THRESHOLD = 2**31 - 1  # never trim


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; False (and nothing done) elsewhere."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
