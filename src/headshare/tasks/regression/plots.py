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


def _against(ax: Axes, store: xr.Dataset, axis: str, colour: Any) -> None:
    """Model loss (mean over seeds, band: min-max) and the GD and least-squares references along ``axis``."""
    loss = store["generalisation_loss"]
    x = store[axis].values
    ax.plot(x, loss.mean("seed").values, color=colour, marker="o", label="model")
    ax.fill_between(x, loss.min("seed").values, loss.max("seed").values, color=colour, alpha=0.25, lw=0)
    ax.plot(x, store["generalisation_gd_loss"].values, color="tab:red", ls="--", marker=".", label="one-step GD")
    ax.plot(x, store["generalisation_least_squares_loss"].values, color="tab:green", ls=":", marker=".",
            label="least squares")
    ax.set_yscale("symlog", linthresh=1e-3)


def regression_generalisation(store: xr.Dataset, fixed: Mapping[str, Any]) -> Figure:
    """Loss against the number of context examples (at the training input scale) and against the input
    scale (at the training context length), per attention kind, beside one-step GD and least squares."""
    trained_n = int(store.attrs.get("n_context", store["n_eval"].values[0]))
    at_scale = store.sel(scale=1.0) if 1.0 in store["scale"].values else store.isel(scale=0)
    at_n = store.sel(n_eval=trained_n) if trained_n in store["n_eval"].values else store.isel(n_eval=0)
    kinds = list(store["attention"].values)
    colours = dict(zip(kinds, sns.color_palette("colorblind", len(kinds))))
    fig, axes = panel_grid(2 * len(kinds), columns=2, panel=(3.6, 2.8), sharex=False, sharey=False, legend=True)
    for row, kind in enumerate(kinds):
        left, right = axes[2 * row], axes[2 * row + 1]
        _against(left, at_scale.sel(attention=kind), "n_eval", colours[kind])
        left.axvline(trained_n, color="0.6", lw=0.8)
        left.set(xlabel="context examples N", ylabel="loss ½(ŷ − y)²",
                 title=f"attention = {kind}: loss vs N (scale {format_value(float(at_scale['scale']))})")
        _against(right, at_n.sel(attention=kind), "scale", colours[kind])
        right.axvline(1.0, color="0.6", lw=0.8)
        right.set(xlabel="input scale α (x ~ U(−α/2, α/2))",
                  title=f"attention = {kind}: loss vs α (N = {format_value(int(at_n['n_eval']))})")
    handles = [Line2D([], [], color=colours[k], marker="o", label=f"model, attention = {k} (band: seeds)") for k in kinds]
    handles += [Line2D([], [], color="tab:red", ls="--", marker=".", label="one-step GD at the trained η"),
                Line2D([], [], color="tab:green", ls=":", marker=".", label="least squares"),
                Line2D([], [], color="0.6", lw=0.8, label="training distribution")]
    side_legend(fig, handles)
    return fig
