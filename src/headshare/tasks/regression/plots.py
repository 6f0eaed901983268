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


def _model_label(row: Any) -> str:
    return (f"{row.architecture}\nn_layers = {format_value(row.n_layers)}\n"
            f"n_heads = {format_value(row.n_heads)}\nd_head = {format_value(row.d_head)}")


def _seed_points(ax: Axes, values: xr.DataArray, palette: dict[str, Any]) -> None:
    """Each seed as a dot, coloured by attention kind, with the mean and min-max as black bars, per model
    (architecture, layers, heads) on the x axis; models no grid trained are left out."""
    frame = values.to_dataframe().reset_index().dropna(subset=[values.name])
    frame["model"] = [_model_label(row) for row in frame.itertuples()]
    frame["attention"] = [f"attention = {kind}" for kind in frame["attention"]]
    models = list(dict.fromkeys(frame["model"]))
    kinds = list(palette)
    sns.stripplot(data=frame, x="model", y=values.name, order=models, hue="attention", hue_order=kinds,
                  palette=palette, dodge=True, jitter=False, size=4, alpha=0.7, ax=ax, legend=False)
    sns.pointplot(data=frame, x="model", y=values.name, order=models, hue="attention", hue_order=kinds,
                  palette=["black"] * len(kinds), dodge=0.8 - 0.8 / len(kinds), errorbar=("pi", 100),
                  markers="_", markersize=12, linestyle="none", ax=ax, legend=False)
    ax.set_xticks(range(len(models)), labels=models, fontsize="x-small")
    ax.set_xlabel("model")


def _strip_panels(store: xr.Dataset, panels: tuple[tuple[str, str, str], ...]) -> tuple[Figure, list[Axes], dict]:
    """One strip panel per (variable, y label, title); two columns of wider panels once there are many models."""
    kinds = [f"attention = {kind}" for kind in store["attention"].values]
    palette = dict(zip(kinds, sns.color_palette("colorblind", len(kinds))))
    n_models = int(store["steps_trained"].notnull().any(("seed", "attention")).sum())
    columns = 2 if n_models > 3 else len(panels)
    width = max(3.8, 0.7 * n_models + 1.0) if columns == 2 else 3.8
    fig, axes = panel_grid(len(panels), columns=columns, panel=(width, 3.4), sharex=False, sharey=False, legend=True)
    for ax, (name, ylabel, title) in zip(axes, panels):
        _seed_points(ax, store[name], palette)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}\n(dots: seeds; bars: mean, min-max)")
    return fig, axes, palette


def _attention_handles(palette: dict[str, Any]) -> list[Line2D]:
    return [Line2D([], [], color=colour, marker="o", ls="", label=kind) for kind, colour in palette.items()]


def regression_vs_gd(store: xr.Dataset, fixed: Mapping[str, Any]) -> Figure:
    """Loss, gradient cosine and prediction distance per attention kind, against the one-step GD,
    least-squares and zero-predictor references."""
    attrs = store.attrs
    fig, axes, palette = _strip_panels(store, _PANELS)
    references = [
        ("zero_loss", "zero predictor", "0.55"),
        ("gd_loss", f"one-step GD (η = {attrs['gd_eta']:.3g})", "tab:red"),
        ("least_squares_loss", "least squares", "tab:green"),
    ]
    handles = _attention_handles(palette)
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


_CURRY_PANELS = (
    ("curry_residual", "residual / variance of ŷ", "is a context a weight update? (0: exactly)"),
    ("curry_finetune_cosine", "cosine of W' − W with a fine-tuning step", "W' − W vs one fine-tuning step on c"),
    ("curry_gd_cosine", "cosine with one-step GD's w", "the linear predictor W' implies vs GD's"),
    ("curry_distance", "‖W' − W‖ / ‖W‖", "size of the update"),
)


def regression_currying(store: xr.Dataset, fixed: Mapping[str, Any]) -> Figure:
    """The currying fit per model: residual, alignment with fine-tuning and with GD, and the update's size;
    each seed's value is its mean over the held-out contexts."""
    per_seed = store.assign({name: store[name].mean("curry_context") for name, _, _ in _CURRY_PANELS})
    fig, axes, palette = _strip_panels(per_seed, _CURRY_PANELS)
    axes[0].set_yscale("log")
    side_legend(fig, _attention_handles(palette))
    return fig


_DEPTH_PANELS = (  # store variable, y label, panel title
    ("loss", "eval loss ½(ŷ − y)²", "loss against depth"),
    ("multistep_gradient_cosine", "cosine of ∂ŷ/∂x_q", "agreement with K-step GD"),
    ("gdpp_gradient_cosine", "cosine of ∂ŷ/∂x_q", "agreement with K-step GD++"),
    ("least_squares_gap_closed", "share of the GD → least-squares gap", "gap to least squares closed"),
)


def _families(store: xr.Dataset) -> list[dict[str, Any]]:
    """Every (attention, architecture, n_heads, d_head) that some grid trained, as selections of the store."""
    keys = ["attention", "architecture", "n_heads", "d_head"]
    trained = store["steps_trained"].notnull().any(("seed", "n_layers")).to_dataframe().reset_index()
    return [dict(zip(keys, row)) for row in trained.loc[trained["steps_trained"], keys].itertuples(index=False)]


def regression_depth(store: xr.Dataset, fixed: Mapping[str, Any]) -> Figure:
    """Loss, cosines with K-step GD and GD++, and the share of the gap to least squares closed, against the
    number of layers K: every trained model family beside the two references."""
    gd, least_squares = float(store.attrs["gd_loss"]), float(store.attrs["least_squares_loss"])
    families = _families(store)
    colours = sns.color_palette("colorblind", len(families))
    fig, axes = panel_grid(len(_DEPTH_PANELS), columns=2, panel=(3.8, 3.0), sharex=True, sharey=False, legend=True)
    handles = []
    for colour, where in zip(colours, families):
        at = store.sel(where)
        for ax, (name, _, _) in zip(axes, _DEPTH_PANELS):
            values = at[name].dropna("n_layers", how="all")
            k = values["n_layers"].values
            ax.plot(k, values.mean("seed").values, color=colour, marker="o")
            ax.fill_between(k, values.min("seed").values, values.max("seed").values, color=colour, alpha=0.2, lw=0)
        label = (f"{where['attention']}, {where['architecture']}, n_heads = {format_value(where['n_heads'])}, "
                 f"d_head = {format_value(where['d_head'])}")
        handles.append(Line2D([], [], color=colour, marker="o", label=label))
    depth = store["depth"].values
    for name, text, colour, ls in (("multistep_gd_loss", "K-step GD", "tab:red", "--"),
                                   ("gdpp_loss", "K-step GD++", "tab:purple", ":")):
        axes[0].plot(depth, store[name].values, color=colour, ls=ls, marker=".")
        axes[3].plot(depth, (gd - store[name].values) / (gd - least_squares), color=colour, ls=ls, marker=".")
        handles.append(Line2D([], [], color=colour, ls=ls, marker=".", label=f"{text} (line-searched)"))
    axes[3].axhline(1.0, color="tab:green", ls="-.", lw=1.0)
    handles.append(Line2D([], [], color="tab:green", ls="-.", label=f"least squares (loss {least_squares:.2g})"))
    for ax, (_, ylabel, title) in zip(axes, _DEPTH_PANELS):
        ax.set(xlabel="n_layers (K, the references' steps)", ylabel=ylabel, title=title)
        ax.set_xticks(depth)
    for ax in axes[1:3]:
        ax.axhline(1.0, color="0.6", lw=0.8)
    side_legend(fig, handles)
    return fig
