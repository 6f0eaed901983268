"""Per-head variables as figures show them: every (layer, head) pair of a model, labelled once.

Stores pad ``layer`` and ``head`` with NaN up to the largest model of the grid; a figure draws a
model's heads as all its (layer, head) pairs, and skips the padding.
"""

from __future__ import annotations

import numpy as np
import xarray as xr


def head_label(layer: int, head: int, n_layers: int) -> str:
    """``head 1`` in a one-layer model, ``L0 H1`` when there are several layers."""
    return f"head {head}" if n_layers == 1 else f"L{layer} H{head}"


def heads_legend_title(n_layers: int) -> str:
    """The legend title over head labels; for one-layer models it states that every head is in layer 0."""
    return "head (layer 0)" if n_layers == 1 else "layer, head"


def stack_heads(values: xr.DataArray, n_layers: int) -> xr.DataArray:
    """``values`` with (layer, head) stacked into ``unit`` for layers below ``n_layers``, labelled by
    :func:`head_label`; units whose values are all NaN (padding) are dropped."""
    kept = values.isel(layer=slice(0, n_layers))
    stacked = kept.stack(unit=("layer", "head"))
    labels = [head_label(int(layer), int(head), n_layers) for layer, head in stacked["unit"].values]
    stacked = stacked.drop_vars(["unit", "layer", "head"]).assign_coords(unit=labels)
    present = np.isfinite(stacked).any([dim for dim in stacked.dims if dim != "unit"])
    return stacked.isel(unit=np.flatnonzero(present.values))
