"""Draw functions of the hmm figures (declared in :mod:`headshare.tasks.hmm.figures`).

Each gets the combined store at one page (its split axes removed) and returns a Figure with one panel
per faceted value. Seeds are summarised in every panel (mean with a min-max band, or one point per
seed and head), never chosen.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
import xarray as xr
import yaml
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import NullLocator

from headshare.analysis.beliefs import project_to_simplex_2d
from headshare.analysis.decay import geometric_mean
from headshare.figures.canvas import finite_max, panel_grid, side_legend
from headshare.figures.heads import heads_legend_title, stack_heads
from headshare.figures.spec import format_value
from headshare.predictions import PREDICTIONS_SCHEMA
from headshare.tasks.hmm.quantities import matched_factor_rates

_FACTOR_STYLES = (  # (colour, dash pattern) of the |lambda_k| reference of factor k
    ("0.2", (0, (5, 2))),
    ("0.55", (0, (2, 1.5))),
)
_HEAD_PALETTE = "colorblind"


def reference_decay_curve(anchor: float, ratios: np.ndarray) -> np.ndarray:
    """``anchor * [1, r1, r1 r2, ...]``: a decay with per-step ratios, pinned to ``anchor`` at its start.

    A constant ratio |lambda| gives the |lambda|^(d-s) prediction; the exact filter's r_eff(n)
    gives its effective decay.
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    return anchor * np.concatenate([[1.0], np.cumprod(ratios)])


def rank_heads_by_factor(ablation: xr.DataArray) -> xr.DataArray:
    """Reorder heads, independently for every model, by (factor-1 rise - factor-2 rise), largest first.

    Head indices are arbitrary per seed, so averaging raw head x factor matrices over seeds would
    blur any specialisation; after ranking, rank 0 is each model's most factor-1-specific head.
    Missing (NaN) heads go last. Returns the same dims with ``head`` holding ranks 0..H-1.
    """
    if "head" not in ablation.dims or ablation.sizes.get("factor") != 2:
        raise ValueError(f"need dims 'head' and 'factor' (size 2), got {dict(ablation.sizes)}")
    arranged = ablation.transpose(..., "head", "factor")
    values = arranged.values
    preference = values[..., 0] - values[..., 1]
    order = np.argsort(-preference, axis=-1, kind="stable")  # NaN sorts last
    ranked = np.take_along_axis(values, order[..., None], axis=-2)
    return arranged.copy(data=ranked).assign_coords(head=np.arange(arranged.sizes["head"]))


def _condition_title(store: xr.Dataset, condition: Any, detail: str = "") -> str:
    """``<id> (<role>)`` and ``λ = (λ1, λ2)``, with ``detail`` after the eigenvalues."""
    row = store.sel(condition=condition)
    lambdas = f"λ = ({float(row['lambda1']):g}, {float(row['lambda2']):g})"
    return f"{condition} ({row['role'].item()})\n{lambdas}{' · ' + detail if detail else ''}"


def _abs_lambdas(store: xr.Dataset, condition: Any) -> list[float]:
    """|lambda1|, |lambda2| of one condition, once each (equal magnitudes share one reference line)."""
    row = store.sel(condition=condition)
    return list(dict.fromkeys(abs(float(row[name])) for name in ("lambda1", "lambda2")))


def _lambda_handles() -> list[Line2D]:
    return [
        Line2D([], [], color=colour, ls=dashes, label=f"|λ{k}| (factor {k})")
        for k, (colour, dashes) in enumerate(_FACTOR_STYLES, start=1)
    ]


def _positive(values: np.ndarray) -> np.ndarray:
    return np.where(values > 0, values, np.nan)


def _head_colours(labels: list[str]) -> dict[str, Any]:
    return dict(zip(labels, sns.color_palette(_HEAD_PALETTE, len(labels))))


# ------------------------------------------------------------------------------ attention decay
def _attention_panel(ax: Axes, attention: xr.DataArray, colours: dict[str, Any], abs_lambdas: list[float],
                     filter_ratios: np.ndarray) -> None:
    """Per-head curves (unit, seed, distance) with min-max seed bands, plus the lambda and filter references."""
    distance = attention["distance"].values
    ax.axvspan(-0.5, 0.5, color="0.93", zorder=0)
    mean, low, high = attention.mean("seed"), attention.min("seed"), attention.max("seed")
    for unit in attention["unit"].values:
        colour = colours[unit]
        ax.fill_between(distance, _positive(low.sel(unit=unit).values), _positive(high.sel(unit=unit).values),
                        color=colour, alpha=0.25, lw=0)
        ax.plot(distance, _positive(mean.sel(unit=unit).values), marker="o", ms=3, color=colour, lw=1.4)
    at_one = mean.sel(distance=1).values if 1 in distance else np.array([])
    at_one = at_one[np.isfinite(at_one)]
    if at_one.size == 0:
        return
    anchor, tail = at_one.mean(), distance[distance >= 1]
    for lam, (colour, dashes) in zip(abs_lambdas, _FACTOR_STYLES):
        ax.plot(tail, reference_decay_curve(anchor, np.full(tail.size - 1, lam)), color=colour, ls=dashes, lw=1.2)
    ax.plot(tail, _positive(reference_decay_curve(anchor, filter_ratios[: tail.size - 1])), color="black", lw=1.0)


def _attention_grid(store: xr.Dataset, fixed: Mapping[str, Any], column: str) -> Figure:
    """Attention-vs-distance panels, rows = condition, columns = ``column`` (n_heads or a)."""
    n_layers = int(fixed["n_layers"])
    conditions, columns = store["condition"].values, store[column].values
    fig, axes = panel_grid(len(conditions) * len(columns), columns=len(columns), panel=(3.2, 2.2), legend=True)
    units: list[str] = []
    cells = []
    for ax, (condition, value) in zip(axes, [(c, v) for c in conditions for v in columns]):
        cell = store.sel({"condition": condition, column: value})
        attention = stack_heads(cell["attention_distance"], n_layers).transpose("unit", "seed", "distance")
        units += [u for u in attention["unit"].values if u not in units]
        cells.append((ax, cell, attention, condition, value))
    colours = _head_colours(units)
    for ax, cell, attention, condition, value in cells:
        _attention_panel(ax, attention, colours, _abs_lambdas(store, condition),
                         cell["filter_decay"].transpose("step").values)
        ax.set_title(_condition_title(store, condition, f"{column} = {format_value(value)}"))
    axes[0].set_yscale("log")
    axes[0].yaxis.set_minor_locator(NullLocator())
    fig.supxlabel("distance d − s (tokens)")
    fig.supylabel("mean attention from the last query (probability)")
    handles = [Line2D([], [], color=colours[u], marker="o", ms=3, label=u) for u in units]
    handles += _lambda_handles()
    handles.append(Line2D([], [], color="black", label="exact filter r_eff (cumulative)"))
    handles.append(Patch(color="0.93", label="distance 0 (not identifiable)"))
    side_legend(fig, handles, heads_legend_title(n_layers))
    return fig


def attention_decay(store: xr.Dataset, fixed: Mapping[str, Any]) -> Figure:
    """Attention vs distance per head; rows = condition, columns = n_heads."""
    return _attention_grid(store, fixed, "n_heads")


def attention_decay_by_a(store: xr.Dataset, fixed: Mapping[str, Any]) -> Figure:
    """Attention vs distance per head; rows = condition, columns = emission fidelity a."""
    return _attention_grid(store, fixed, "a")


# ---------------------------------------------------------------------------------- decay rates
_LAYER_MARKERS = ("o", "s", "^", "D")


def decay_rates(store: xr.Dataset, fixed: Mapping[str, Any]) -> Figure:
    """Fitted decay rate per (seed, layer, head) against a, hue = n_heads, one panel per condition."""
    n_layers = int(fixed["n_layers"])
    a_values = store["a"].values.astype(np.float64)
    spacing = np.min(np.diff(np.sort(a_values))) if a_values.size > 1 else 0.1
    n_heads_values = store["n_heads"].values
    offsets = (np.arange(n_heads_values.size) - (n_heads_values.size - 1) / 2) * 0.12 * spacing
    palette = sns.color_palette("colorblind", n_heads_values.size)
    conditions = store["condition"].values
    filter_rate = geometric_mean(store["filter_decay"].transpose("condition", "a", "step").values)

    fig, axes = panel_grid(len(conditions), legend=True)
    for ax, (j, condition) in zip(axes, enumerate(conditions)):
        cell = store.sel(condition=condition)
        for k, heads in enumerate(n_heads_values):
            model = cell.sel(n_heads=heads)
            for layer in range(n_layers):
                per_layer = model.isel(layer=layer).transpose("a", ...)
                rate = per_layer["decay_rate"].values.reshape(a_values.size, -1)
                low = rate - per_layer["decay_ci_low"].values.reshape(a_values.size, -1)
                high = per_layer["decay_ci_high"].values.reshape(a_values.size, -1) - rate
                x = np.broadcast_to((a_values + offsets[k])[:, None], rate.shape)
                ax.errorbar(x.ravel(), rate.ravel(), yerr=[low.ravel(), high.ravel()], ls="none",
                            marker=_LAYER_MARKERS[layer % len(_LAYER_MARKERS)], ms=3, color=palette[k],
                            elinewidth=0.8, alpha=0.8)
        order = np.argsort(a_values)
        ax.plot(a_values[order], filter_rate[j][order], color="black", marker="s", ms=3, lw=1.0)
        for lam, (colour, dashes) in zip(_abs_lambdas(store, condition), _FACTOR_STYLES):
            ax.axhline(lam, color=colour, ls=dashes, lw=1.1)
        ax.set_xticks(a_values, labels=[format_value(a) for a in a_values])
        ax.set_xlabel("a (emission fidelity)")
        ax.set_title(_condition_title(store, condition))
    fig.supylabel("attention decay rate per distance step")
    handles = [Line2D([], [], color=c, marker="o", ls="", label=f"n_heads = {format_value(h)}")
               for h, c in zip(n_heads_values, palette)]
    handles += [Line2D([], [], color="0.3", marker=_LAYER_MARKERS[layer % len(_LAYER_MARKERS)], ls="",
                       label=f"layer = {layer}") for layer in range(n_layers)]
    handles += _lambda_handles()
    handles.append(Line2D([], [], color="black", marker="s", ms=3, label="exact filter (geometric-mean r_eff)"))
    side_legend(fig, handles, "heads of models with")
    return fig


# ---------------------------------------------------------------------------------- decay phase
_FACTOR_MARKERS = ("o", "s")
_FACTOR_LINES = ("-", "--")
_PHASE_REFERENCES = ("|λ|", "filter r_eff")


def _default_parity_ratio() -> float:
    """The predictions file's default ``parity_ratio``, from its schema: the figure splits heads as scoring does."""
    schema = yaml.safe_load(PREDICTIONS_SCHEMA.read_text())
    return float(schema["properties"]["defaults"]["properties"]["parity_ratio"]["default"])


def phase_ratios(store: xr.Dataset, condition: Any, parity_ratio: float) -> np.ndarray:
    """(reference, n_heads, a, seed, factor): the decay of the head matched to each factor divided by the
    factor's |lambda| (reference 0) and by its exact filter's geometric-mean r_eff (reference 1)."""
    row = store.sel(condition=condition)
    magnitudes = np.abs([float(row["lambda1"]), float(row["lambda2"])])
    heads, fidelities = row["n_heads"].values, row["a"].values
    ratios = np.full((2, heads.size, fidelities.size, row.sizes["seed"], 2), np.nan)
    for (h, n_heads), (j, a) in itertools.product(enumerate(heads), enumerate(fidelities)):
        cell = row.sel(n_heads=n_heads, a=a)
        rates = matched_factor_rates(cell, parity_ratio)
        r_eff = geometric_mean(cell["factor_filter_decay"].transpose("factor", "step").values)
        ratios[:, h, j] = rates / magnitudes, rates / r_eff
    return ratios


def _over_seeds(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min and max over the first axis of the finite values (NaN where there are none)."""
    finite = np.isfinite(values)
    count = finite.sum(axis=0)
    mean = np.where(count > 0, np.where(finite, values, 0.0).sum(axis=0) / np.maximum(count, 1), np.nan)
    return mean, np.fmin.reduce(values, axis=0), np.fmax.reduce(values, axis=0)


def decay_phase(store: xr.Dataset, fixed: Mapping[str, Any]) -> Figure:
    """Matched heads' decay / |lambda| and / r_eff against a, hue = n_heads, marker = factor; two panels
    per condition."""
    a_values = store["a"].values.astype(np.float64)
    order = np.argsort(a_values)
    spacing = np.min(np.diff(np.sort(a_values))) if a_values.size > 1 else 0.1
    n_heads_values = store["n_heads"].values
    palette = sns.color_palette("colorblind", n_heads_values.size)
    slots = n_heads_values.size * 2
    offsets = (np.arange(slots) - (slots - 1) / 2) * 0.6 * spacing / slots
    parity_ratio = _default_parity_ratio()
    conditions = store["condition"].values
    fig, axes = panel_grid(2 * len(conditions), legend=True)
    for i, condition in enumerate(conditions):
        ratios = phase_ratios(store, condition, parity_ratio)
        for reference, ax in enumerate(axes[2 * i : 2 * i + 2]):
            for (h, colour), factor in itertools.product(enumerate(palette), range(2)):
                mean, low, high = _over_seeds(ratios[reference, h, :, :, factor].T)
                x = a_values + offsets[2 * h + factor]
                ax.errorbar(x[order], mean[order], yerr=[(mean - low)[order], (high - mean)[order]], color=colour,
                            marker=_FACTOR_MARKERS[factor], ls=_FACTOR_LINES[factor], ms=3, lw=1.0,
                            elinewidth=0.8)
            ax.axhline(1.0, color="0.4", lw=0.9, ls=":")
            ax.set_xticks(a_values, labels=[format_value(a) for a in a_values])
            ax.set_xlabel("a (emission fidelity)")
            ax.set_title(_condition_title(store, condition, f"decay ÷ {_PHASE_REFERENCES[reference]}"))
    fig.supylabel("fitted decay of the matched head / reference (dimensionless)")
    handles = [Line2D([], [], color=c, marker="o", ls="", label=f"n_heads = {format_value(h)}")
               for h, c in zip(n_heads_values, palette)]
    handles += [Line2D([], [], color="0.3", marker=m, ls=ls, label=f"factor {k}")
                for k, (m, ls) in enumerate(zip(_FACTOR_MARKERS, _FACTOR_LINES), start=1)]
    handles.append(Line2D([], [], color="0.4", ls=":", label="ratio 1 (decay = reference)"))
    side_legend(fig, handles, "heads of models with")
    return fig


# ------------------------------------------------------------------------------ loss and beliefs
def _seed_lines(ax: Axes, values: xr.DataArray, hue: str, hue_label: str, x: str = "n_heads") -> list[Line2D]:
    """Seaborn lines of ``values`` against ``x`` by ``hue``: mean over seeds, band = min-max; returns handles."""
    frame = values.to_dataframe().reset_index().dropna(subset=[values.name])
    levels = [f"{hue_label} = {format_value(v)}" for v in values[hue].values]
    frame[hue] = [f"{hue_label} = {format_value(v)}" for v in frame[hue]]
    palette = dict(zip(levels, sns.color_palette("colorblind", len(levels))))
    if not frame.empty:
        sns.lineplot(data=frame, x=x, y=values.name, hue=hue, hue_order=levels, palette=palette,
                     estimator="mean", errorbar=("pi", 100), marker="o", markersize=4, ax=ax, legend=False)
    ticks = values[x].values
    ax.set_xticks(ticks, labels=[format_value(t) for t in ticks])
    ax.set_xlabel(x)
    ax.set_ylabel("")
    return [Line2D([], [], color=palette[level], marker="o", label=level) for level in levels]


def excess_heatmap(store: xr.Dataset, fixed: Mapping[str, Any]) -> Figure:
    """Normalised excess loss against n_heads, hue = d_head, one panel per condition."""
    conditions = store["condition"].values
    fig, axes = panel_grid(len(conditions), legend=True, sharey=False)
    handles: list[Line2D] = []
    for ax, condition in zip(axes, conditions):
        cell = store.sel(condition=condition)
        handles = _seed_lines(ax, cell["normalised_excess"], "d_head", "d_head")
        ax.axhline(0.0, color="0.6", lw=0.8, ls=":")
        gain = float(cell["context_gain"])
        ax.set_title(_condition_title(store, condition, f"gain {gain:.3g} nats"))
    fig.supylabel("(L_model − L_opt) / (L_unigram − L_opt)")
    side_legend(fig, handles, "head size")
    return fig


def belief_r2(store: xr.Dataset, fixed: Mapping[str, Any]) -> Figure:
    """Held-out belief-regression R^2 against n_heads, hue = belief target, one panel per condition."""
    conditions = store["condition"].values
    fig, axes = panel_grid(len(conditions), legend=True)
    handles: list[Line2D] = []
    for ax, condition in zip(axes, conditions):
        handles = _seed_lines(ax, store["belief_r2"].sel(condition=condition), "target", "belief target")
        ax.axhline(1.0, color="0.6", lw=0.8, ls=":")
        ax.set_title(_condition_title(store, condition))
    fig.supylabel("held-out R² (dimensionless)")
    side_legend(fig, handles)
    return fig


# ---------------------------------------------------------------------------------- head ablation
def _ranked_share(store: xr.Dataset, condition: Any, n_layers: int, variable: str, per_factor: xr.DataArray | float
                  ) -> pd.DataFrame:
    """Rows 'n_heads = h · rank r' (every (layer, head) of each model, ranked per seed), columns factors:
    the mean over seeds of ``variable`` (layer, head, factor) divided by ``per_factor``."""
    cell = store.sel(condition=condition)
    rows = {}
    for heads in store["n_heads"].values:
        values = cell[variable].sel(n_heads=heads).isel(layer=slice(0, n_layers))
        flat = values.stack(pair=("layer", "head")).drop_vars(["pair", "layer", "head"]).rename(pair="head")
        ranked = rank_heads_by_factor(flat).mean("seed") / per_factor
        for rank in range(n_layers * int(heads)):
            rows[f"n_heads = {format_value(heads)} · rank {rank + 1}"] = ranked.isel(head=rank).transpose("factor").values
    return pd.DataFrame.from_dict(rows, orient="index", columns=[f"factor {f}" for f in store["factor"].values])


def _head_matrix(store: xr.Dataset, tables: list[pd.DataFrame], limits: tuple[float, float], cmap: str,
                 label: str) -> Figure:
    """One heatmap of ranked heads x factors per condition, annotated in percent, with one colour bar."""
    conditions = store["condition"].values
    fig, axes = panel_grid(len(conditions), panel=(3.2, 1.0 + 0.24 * len(tables[0])), sharex=False, sharey=False)
    for ax, condition, table in zip(axes, conditions, tables):
        annotation = np.vectorize(lambda v: f"{v:.0%}" if np.isfinite(v) else "")(table.to_numpy())
        sns.heatmap(table, ax=ax, cmap=cmap, vmin=limits[0], vmax=limits[1], annot=annotation, fmt="", cbar=False,
                    linewidths=0.5, linecolor="white", annot_kws={"fontsize": "x-small"})
        ax.tick_params(axis="y", rotation=0, labelsize="x-small", labelleft=ax.get_subplotspec().is_first_col())
        ax.grid(False)
        ax.set_title(_condition_title(store, condition))
    fig.colorbar(axes[0].collections[0], ax=axes, label=label, shrink=0.6)
    fig.supylabel("head, ranked within each seed by factor-1 specificity")
    return fig


def ablation_matrix(store: xr.Dataset, fixed: Mapping[str, Any]) -> Figure:
    """Head x factor loss rise under mean-ablation, heads ranked per seed, one panel per condition."""
    n_layers = int(fixed["n_layers"])
    tables = [_ranked_share(store, c, n_layers, "ablation_factor_excess", store["factor_context_gain"].sel(condition=c))
              for c in store["condition"].values]
    limit = finite_max(np.abs(np.concatenate([table.to_numpy().ravel() for table in tables])), 1.0)
    return _head_matrix(store, tables, (-limit, limit), "vlag", "loss rise / factor's context gain")


def head_factor_share(store: xr.Dataset, fixed: Mapping[str, Any]) -> Figure:
    """Head x factor share of each head's output variance in each factor's belief subspace."""
    n_layers = int(fixed["n_layers"])
    tables = [_ranked_share(store, c, n_layers, "head_factor_share", 1.0) for c in store["condition"].values]
    return _head_matrix(store, tables, (0.0, 1.0), "mako_r", "share of the head's output variance")


def factor_geometry(store: xr.Dataset, fixed: Mapping[str, Any]) -> Figure:
    """Subspace overlap of the two factors and the joint read-out's effective dimension per condition, one
    colour per number of heads (dots: seeds; bars: mean, min-max), beside the factored and product counts."""
    frame = store[["factor_overlap", "belief_dimension"]].to_dataframe().reset_index()
    frame = frame.dropna(subset=["factor_overlap", "belief_dimension"], how="all")
    frame["n_heads"] = [f"n_heads = {format_value(h)}" for h in frame["n_heads"]]
    conditions = [str(c) for c in store["condition"].values]
    levels = [f"n_heads = {format_value(h)}" for h in store["n_heads"].values]
    palette = dict(zip(levels, sns.color_palette("colorblind", len(levels))))
    fig, axes = panel_grid(2, columns=2, panel=(5.5, 3.4), sharex=False, sharey=False, legend=True)
    panels = (("factor_overlap", "subspace overlap (mean cos² of principal angles)", "factor subspaces: 0 = orthogonal"),
              ("belief_dimension", "effective dimension (95% of R²)", "joint belief read-out"))
    for ax, (name, ylabel, title) in zip(axes, panels):
        sns.stripplot(data=frame, x="condition", y=name, order=conditions, hue="n_heads", hue_order=levels,
                      palette=palette, dodge=True, jitter=False, size=3, alpha=0.6, ax=ax, legend=False)
        sns.pointplot(data=frame, x="condition", y=name, order=conditions, hue="n_heads", hue_order=levels,
                      palette=palette, dodge=0.8 - 0.8 / len(levels), errorbar=("pi", 100), markers="_",
                      markersize=10, linestyle="none", ax=ax, legend=False)
        ax.set(xlabel="", ylabel=ylabel, title=title)
        ax.tick_params(axis="x", rotation=60, labelsize="x-small")
    positions = np.arange(len(conditions))
    axes[1].scatter(positions, store["factored_dimension"].values, marker="D", facecolor="none", edgecolor="black")
    axes[1].scatter(positions, store["product_dimension"].values, marker="x", color="0.4")
    handles = [Line2D([], [], color=palette[level], marker="o", ls="", label=level) for level in levels]
    handles += [Line2D([], [], marker="D", markerfacecolor="none", markeredgecolor="black", ls="", label="factored count"),
                Line2D([], [], marker="x", color="0.4", ls="", label="product count")]
    side_legend(fig, handles)
    return fig


def factor_overlap_training(store: xr.Dataset, fixed: Mapping[str, Any]) -> Figure:
    """The factors' subspace overlap on the held-out batch against training step, one panel per condition,
    one line per number of heads (mean over seeds, band: min-max)."""
    conditions = store["condition"].values
    levels = [f"n_heads = {format_value(h)}" for h in store["n_heads"].values]
    palette = dict(zip(levels, sns.color_palette("colorblind", len(levels))))
    fig, axes = panel_grid(len(conditions), legend=True, sharey=True)
    for ax, condition in zip(axes, conditions):
        frame = store["eval_factor_overlap"].sel(condition=condition).to_dataframe().reset_index()
        frame = frame.dropna(subset=["eval_factor_overlap"])
        frame["n_heads"] = [f"n_heads = {format_value(h)}" for h in frame["n_heads"]]
        if not frame.empty:
            sns.lineplot(data=frame, x="eval_step", y="eval_factor_overlap", hue="n_heads", hue_order=levels,
                         palette=palette, estimator="mean", errorbar=("pi", 100), ax=ax, legend=False)
        ax.set(xlabel="training step", ylabel="", title=_condition_title(store, condition))
    fig.supylabel("factor subspace overlap (0 = orthogonal)")
    side_legend(fig, [Line2D([], [], color=palette[level], label=level) for level in levels])
    return fig


# ------------------------------------------------------------------------------ belief geometry
def _simplex_panel(ax: Axes, beliefs: np.ndarray, colours: np.ndarray, title: str) -> None:
    corners = project_to_simplex_2d(np.eye(3))
    ax.fill(corners[:, 0], corners[:, 1], facecolor="none", edgecolor="0.3", lw=1.0)
    for state, (x, y) in enumerate(corners, start=1):
        ax.annotate(f"state {state}", (x, y), ha="center", va="bottom" if y > 0 else "top", fontsize="small",
                    xytext=(0, 3 if y > 0 else -3), textcoords="offset points")
    points = project_to_simplex_2d(beliefs)
    ax.scatter(points[:, 0], points[:, 1], c=colours, s=6, lw=0, alpha=0.8)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(title)


def _two_state_panels(truth: Axes, errors: Axes, true: np.ndarray, pred: np.ndarray, k: int, rmse: float) -> None:
    truth.scatter(true[:, 1], pred[:, 1], s=6, alpha=0.6, color=sns.color_palette("colorblind")[0], lw=0)
    truth.plot([0, 1], [0, 1], color="0.4", ls="--", lw=0.8)
    truth.set_xlabel("exact P(state 2) (probability)")
    truth.set_ylabel("read-out P(state 2) (probability)")
    truth.set_title(f"factor {k} (2 states): read-out vs exact (RMSE {rmse:.3f})")
    errors.hist((pred - true)[:, 1], bins=30, color="0.5")
    errors.set_xlabel("read-out − exact P(state 2) (probability)")
    errors.set_ylabel("samples")
    errors.set_title(f"factor {k}: read-out error")


def belief_simplex(model_store: xr.Dataset, fixed: Mapping[str, Any]) -> Figure:
    """Exact vs regressed beliefs per factor of one model: simplex pairs for 3-state factors, scatter
    and error histogram for 2-state ones. Reads ``belief_true_k`` / ``belief_pred_k`` (point, state_k)."""
    factors = [k for k in range(1, 10) if f"belief_true_{k}" in model_store and f"belief_pred_{k}" in model_store]
    if not factors:
        raise ValueError("model store needs belief_true_1 and belief_pred_1 (point, state_1)")
    fig, axes = panel_grid(2 * len(factors), columns=2, panel=(3.6, 3.4), sharex=False, sharey=False)
    for row, k in enumerate(factors):
        true = model_store[f"belief_true_{k}"].transpose(..., f"state_{k}").values
        pred = model_store[f"belief_pred_{k}"].transpose(..., f"state_{k}").values
        rmse = float(np.sqrt(np.mean((pred - true) ** 2)))
        left, right = axes[2 * row], axes[2 * row + 1]
        if true.shape[1] == 3:
            colours = np.clip(true, 0.0, 1.0)
            _simplex_panel(left, true, colours, f"factor {k}: exact beliefs")
            _simplex_panel(right, pred, colours, f"factor {k}: linear read-out (RMSE {rmse:.3f})")
        elif true.shape[1] == 2:
            _two_state_panels(left, right, true, pred, k, rmse)
        else:
            raise ValueError(f"belief_true_{k} has {true.shape[1]} states; only 2 or 3 can be drawn")
    return fig
