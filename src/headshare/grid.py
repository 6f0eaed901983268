"""Matching grid values, with one tolerance shared by figures, scoring and selectors.

Grid coordinates come back from zarr as float64 while configs and predictions write them as short
decimals (0.85); comparing with ``==`` would miss, and comparing with ad-hoc tolerances in several
places would let a figure and a verdict disagree on which point they show.
"""

from __future__ import annotations

from typing import Any

import numpy as np

RTOL = 1e-9
ATOL = 1e-12


def same_value(stored: Any, wanted: Any) -> bool:
    """Whether a store's grid value ``stored`` is the value ``wanted`` (numbers to RTOL/ATOL, else ==)."""
    if isinstance(stored, (str, bytes)) or isinstance(wanted, (str, bytes)):
        return stored == wanted
    return bool(np.isclose(float(stored), float(wanted), rtol=RTOL, atol=ATOL))


def find_value(values: Any, wanted: Any) -> Any:
    """The element of ``values`` (a coordinate's values) that is ``wanted``; ValueError naming the allowed ones."""
    values = list(np.asarray(values).tolist())
    for value in values:
        if same_value(value, wanted):
            return value
    raise ValueError(f"{wanted!r} is not among the grid values {values}")
