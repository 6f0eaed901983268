"""Draw functions of the regression figures (declared in :mod:`headshare.tasks.regression.figures`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import seaborn as sns
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from headshare.figures.canvas import panel_grid, side_legend
from headshare.figures.spec import format_value

_PANELS = (  # store variable, y label, panel title
    ("loss", "eval loss ½(ŷ − y)² at the query", "evaluation loss"),
    ("gradient_cosine", "cosine of ∂ŷ/∂x_q, model vs GD", "agreement with one-step GD (1 = identical)"),
    ("prediction_l2", "RMS of ŷ_model − ŷ_GD", "distance from one-step GD's predictions"),
)


def _seed_points(ax: Axes, values: xr.DataArray, palette: dict[str, Any]) -> list[str]:
    """Each seed as a dot, coloured by attention kind, with the mean and min-max as black bars, per model
    configuration (n_heads, d_head) on the x axis; returns the configuration labels."""
    frame = values.to_dataframe().reset_index()
    frame["model"] = [f"n_heads = {format_value(h)}\nd_head = {format_value(d)}"
                      for h, d in zip(frame["n_heads"], frame["d_head"])]
    frame["attention"] = [f"attention = {kind}" for kind in frame["attention"]]
    models = list(dict.fromkeys(frame["model"]))
    kinds = list(palette)
    sns.stripplot(data=frame, x="model", y=values.name, order=models, hue="attention", hue_order=kinds,
                  palette=palette, dodge=True, jitter=False, size=4, alpha=0.7, ax=ax, legend=False)
    sns.pointplot(data=frame, x="model", y=values.name, order=models, hue="attention", hue_order=kinds,
                  palette=["black"] * len(kinds), dodge=0.8 - 0.8 / len(kinds), errorbar=("pi", 100),
                  markers="_", markersize=12, linestyle="none", ax=ax, legend=False)
    ax.set_xticks(range(len(models)), labels=models)
    ax.set_xlabel("model")
    return models


def regression_vs_gd(store: xr.Dataset, fixed: Mapping[str, Any]) -> Figure:
    """Loss, gradient cosine and prediction distance per attention kind, against the one-step GD,
    least-squares and zero-predictor references."""
    attrs = store.attrs
    kinds = [f"attention = {kind}" for kind in store["attention"].values]
    palette = dict(zip(kinds, sns.color_palette("colorblind", len(kinds))))
    fig, axes = panel_grid(len(_PANELS), panel=(3.8, 3.3), sharex=False, sharey=False, legend=True)
    for ax, (name, ylabel, title) in zip(axes, _PANELS):
        _seed_points(ax, store[name], palette)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}\n(dots: seeds; bars: mean, min-max)")
    references = [
        ("zero_loss", "zero predictor", "0.55"),
        ("gd_loss", f"one-step GD (η = {attrs['gd_eta']:.3g})", "tab:red"),
        ("least_squares_loss", "least squares", "tab:green"),
    ]
    handles = [Line2D([], [], color=palette[k], marker="o", ls="", label=k) for k in kinds]
    for key, text, colour in references:
        value = float(attrs[key])
        axes[0].axhline(value, color=colour, ls="--", lw=1.0)
        handles.append(Line2D([], [], color=colour, ls="--", label=f"{text}: {value:.4g}"))
    axes[1].axhline(1.0, color="tab:red", ls="--", lw=1.0)
    side_legend(fig, handles)
    return fig
