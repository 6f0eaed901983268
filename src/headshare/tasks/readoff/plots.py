"""Draw functions of the readoff figures (declared in :mod:`headshare.tasks.readoff.figures`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import seaborn as sns
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from headshare.figures.canvas import panel_grid, side_legend
from headshare.figures.heads import heads_legend_title, stack_heads
from headshare.figures.spec import format_value


def _range_annotation(values: xr.DataArray) -> np.ndarray:
    """'mean [min, max]' over seeds per (n_heads, d_head) cell, blank where every seed is NaN."""
    mean, low, high = (reduced.transpose("n_heads", "d_head").values
                       for reduced in (values.mean("seed"), values.min("seed"), values.max("seed")))
    texts = [f"{m:.2f}\n[{lo:.2f}, {hi:.2f}]" if np.isfinite(m) else "" for m, lo, hi in
             zip(mean.ravel(), low.ravel(), high.ravel())]
    return np.array(texts, dtype=object).reshape(mean.shape)


def readoff_accuracy(store: xr.Dataset, fixed: Mapping[str, Any]) -> Figure:
    """Heatmaps over n_heads x d_head: held-out accuracy, and per layer the Kendall tau between the
    signal-preference orders of heads 0 and 1."""
    n_layers = int(fixed["n_layers"])
    panels = [("accuracy", store["accuracy"], "held-out accuracy (chance 0.1)", "mako", (0.0, 1.0))]
    panels += [
        (f"tau_{layer}", store["preference_tau"].isel(layer=layer),
         f"layer {layer}: head 0 vs head 1 preference order", "vlag", (-1.0, 1.0))
        for layer in range(n_layers)
    ]
    fig, axes = panel_grid(len(panels), panel=(4.2, 3.2), sharex=False, sharey=False)
    for ax, (_, values, title, cmap, (vmin, vmax)) in zip(axes, panels):
        frame = values.mean("seed").transpose("n_heads", "d_head").to_pandas()
        annotation = _range_annotation(values)
        frame.index = [format_value(v) for v in frame.index]
        frame.columns = [format_value(v) for v in frame.columns]
        label = "accuracy (fraction correct)" if values.name == "accuracy" else "Kendall τ (−1 = inverted)"
        sns.heatmap(frame, ax=ax, cmap=cmap, vmin=vmin, vmax=vmax, annot=annotation, fmt="",
                    cbar_kws={"label": label}, linewidths=0.5, linecolor="white", annot_kws={"fontsize": "small"})
        ax.grid(False)
        ax.tick_params(axis="y", rotation=0)
        ax.set_xlabel("d_head")
        ax.set_ylabel("n_heads")
        ax.set_title(title)
    return fig


def readoff_preference(store: xr.Dataset, fixed: Mapping[str, Any]) -> Figure:
    """Per-head attention on each signal token; rows = seed, columns = d_head."""
    n_layers = int(fixed["n_layers"])
    d_heads, seeds, signals = store["d_head"].values, store["seed"].values, store["signal"].values
    units = list(stack_heads(store["signal_preference"], n_layers)["unit"].values)
    colours = dict(zip(units, sns.color_palette("colorblind", len(units))))
    fig, axes = panel_grid(len(seeds) * len(d_heads), columns=len(d_heads), panel=(3.0, 2.2), legend=True)
    for ax, (seed, size) in zip(axes, [(s, d) for s in seeds for d in d_heads]):
        cell = store.sel(seed=seed, d_head=size)
        preference = stack_heads(cell["signal_preference"], n_layers).transpose("unit", "signal")
        width = 0.8 / max(preference.sizes["unit"], 1)
        for slot, unit in enumerate(preference["unit"].values):
            offset = (slot - (preference.sizes["unit"] - 1) / 2) * width
            ax.bar(signals + offset, preference.sel(unit=unit).values, width=width, color=colours[unit])
        taus = cell["preference_tau"].isel(layer=slice(0, n_layers)).values
        tau_text = ", ".join(f"{tau:.2f}" for tau in taus if np.isfinite(tau))
        ax.set_title(f"d_head = {format_value(size)} · seed = {format_value(seed)}"
                     + (f"\nτ = {tau_text}" if tau_text else ""))
        ax.set_xticks(signals)
    fig.supxlabel("signal token")
    fig.supylabel("mean attention from the readoff position (probability)")
    handles = [Line2D([], [], color=colours[u], lw=6, label=u) for u in units]
    side_legend(fig, handles, heads_legend_title(n_layers))
    return fig
