"""Seeds derived from a base seed and stable labels, so each artifact's randomness depends only on itself."""

from __future__ import annotations

import zlib

import numpy as np


def label_entropy(*labels: object) -> int:
    """A stable 32-bit number for labels (Python's hash() is salted per process, so it cannot be used)."""
    return zlib.crc32("|".join(str(label) for label in labels).encode())


def derived_rng(seed: int, *labels: object) -> np.random.Generator:
    """Independent generator for (seed, labels): adding or removing other grid points never changes it."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), label_entropy(*labels)]))


def derived_seed(seed: int, *labels: object) -> int:
    """A 63-bit integer seed for libraries that want one (torch.Generator.manual_seed)."""
    return int(np.random.SeedSequence([int(seed), label_entropy(*labels)]).generate_state(2, np.uint64)[0] >> 1)
