"""The readoff task's evaluation sequences (SCIENCE.md §5) with labels and signal positions."""

from __future__ import annotations

import numpy as np
import xarray as xr

from headshare.provenance import provenance_attrs
from headshare.seeding import derived_rng
from headshare.tasks.readoff.sampler import CLASS_PAIRS, sample_readoff
from headshare.tasks.readoff.settings import ReadoffSettings


def readoff_dataset(settings: ReadoffSettings) -> xr.Dataset:
    sample = sample_readoff(settings.eval_sequences, settings.length, derived_rng(settings.seed, "readoff-eval"))
    pairs = np.array([f"{a}{b}" for a, b in CLASS_PAIRS], dtype=object)
    return xr.Dataset(
        {
            "tokens": (("sequence", "position"), sample.tokens),
            "labels": (("sequence",), sample.labels),
            "signal_positions": (("sequence", "slot"), sample.signal_positions),
            "signal_tokens": (("sequence", "slot"), sample.signal_tokens),
        },
        coords={"position": np.arange(settings.length), "slot": [0, 1], "class_pair": ("class", pairs)},
        attrs=provenance_attrs(settings.config, task="readoff", seed=settings.seed),
    )
