"""keep_freed_memory: after it, a sampler that allocates MiB-sized arrays every call stops faulting in pages."""

import platform
import subprocess
import sys

import pytest

from headshare.allocator import keep_freed_memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Page faults per call of the product sampler, whose joint beliefs alone take about 970 pages (4 MiB).
FAULTS_PER_CALL = """
import resource, sys
import numpy as np
from headshare.allocator import keep_freed_memory
from headshare.tasks.hmm.processes import mess3
from headshare.tasks.hmm.sampler import sample_product
assert keep_freed_memory()
p1, p2, rng = mess3(0.7, 0.85), mess3(0.3, 0.85), np.random.default_rng(0)
sample_product(p1, p2, 5000, 11, rng)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    sample_product(p1, p2, 5000, 11, rng)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5)
"""


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_freed_pages_are_reused():
    # In a fresh process: the setting is process-wide and must not leak into the test session.
    result = subprocess.run([sys.executable, "-c", FAULTS_PER_CALL], capture_output=True, text=True, check=True)
    assert float(result.stdout) < 100  # without keep_freed_memory: about 2,100 on glibc 2.36


@pytest.mark.skipif(GLIBC, reason="only where there is no glibc")
def test_elsewhere_nothing_is_done():
    assert keep_freed_memory() is False
