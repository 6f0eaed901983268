"""Figures from the combined result stores, one function per figure, each saved as PNG and PDF.

Every figure is meant to be read on its own: the title says what is plotted and for which
slice of the grid, axes carry units, and seed spread is shown (bands or error bars give the
min-max over seeds). Figures are drawn on bare ``matplotlib.figure.Figure`` objects, so no
display or pyplot state is involved and rendering works headless.

Heads beyond a model's n_heads are NaN in the stores; every reduction skips NaN, so such heads
simply do not appear.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Callable

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import NullLocator

from headshare.analysis.beliefs import project_to_simplex_2d

FIGURE_CAPTIONS = {
    "attention_decay": (
        "Mean attention from the last query position against distance d - s (log scale), per head, "
        "with the predicted |lambda|^(d-s) decay of each factor (dashed) and the exact filter's "
        "effective decay (solid black), both anchored at the heads' mean attention at distance 1; "
        "distance 0 (shaded) is not identifiable because the residual stream already holds the "
        "current token."
    ),
    "attention_decay_by_a": (
        "The same attention-vs-distance curves for the smallest models across emission fidelities a: "
        "the exact filter's decay approaches |lambda| only as a approaches 1/3."
    ),
    "decay_rates": (
        "Fitted per-head attention decay rates (log-linear fit on distances >= 1, bars: CI over query "
        "positions; one point per seed and head) against emission fidelity a, beside each factor's "
        "|lambda| (dashed) and the exact filter's geometric-mean decay ratio (black)."
    ),
    "excess_heatmap": (
        "Normalised excess loss (L_model - L_opt) / (L_unigram - L_opt), paired against the exact "
        "filter and averaged over seeds, over number of heads and head size, per condition and "
        "emission fidelity."
    ),
    "belief_r2": (
        "Held-out R^2 of a linear read-out of the exact belief states (joint and per factor) from the "
        "final residual stream, per condition and number of heads; bars span the seeds."
    ),
    "belief_simplex": (
        "Exact belief states of each factor on the probability simplex beside their linear "
        "read-out from the residual stream, coloured by the exact belief."
    ),
    "ablation_matrix": (
        "Rise in each factor's marginal loss when one head is mean-ablated, in nats and as a share of "
        "that factor's context gain; within each seed heads are ranked by how much more they serve "
        "factor 1 than factor 2 before averaging, so specialised heads show as a diagonal."
    ),
    "readoff_accuracy": (
        "Readoff task: held-out accuracy on the unordered signal pair (10 classes, chance 0.1) and the "
        "Kendall tau between the two first heads' signal-preference orders (-1 = fully inverted), "
        "mean and range over seeds."
    ),
    "readoff_preference": (
        "Readoff task: mean attention from the readoff position to each signal token, per head, for "
        "every model configuration and seed; inverted orders between heads appear as mirrored bars."
    ),
    "regression": (
        "In-context linear regression: evaluation loss and the cosine between the model's and one-step "
        "gradient descent's input gradients, per attention kind (points: seeds), against the one-step "
        "GD, least-squares and zero-predictor losses, and over training where logged."
    ),
}

_THEME = {
    **sns.axes_style("whitegrid"),
    **sns.plotting_context("paper", font_scale=1.05),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "figure.titlesize": "medium",
    "figure.labelsize": "medium",
}
_PANEL = (3.3, 2.6)  # inches per facet
_LEGEND_WIDTH = 2.4  # inches added for a legend beside the panels
_FACTOR_STYLES = (  # (colour, dash pattern) of the |lambda_k|^(d-s) reference of factor k
    ("0.2", (0, (5, 2))),
    ("0.55", (0, (2, 1.5))),
)
_SEED_SPREAD = "band: min-max over seeds"
_ATTENTION_VARIABLES = ("attention_distance", "filter_decay")


# --------------------------------------------------------------------------------------- helpers
def _themed(draw: Callable[..., list[Path]]) -> Callable[..., list[Path]]:
    """Draw and save under the project's plot theme without touching global rc state."""

    @functools.wraps(draw)
    def wrapper(*args: Any, **kwargs: Any) -> list[Path]:
        with matplotlib.rc_context(_THEME):
            return draw(*args, **kwargs)

    return wrapper


def _save(fig: Figure, stem: str | os.PathLike) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.pdf``; the PDF carries no date so reruns are identical.

    The layout computed for the PNG is frozen before the PDF is written: the same positions,
    without paying for the layout pass twice.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, pdf = Path(f"{stem}.png"), Path(f"{stem}.pdf")
    fig.savefig(png)
    fig.set_layout_engine("none")
    fig.savefig(pdf, metadata={"CreationDate": None})
    return [png, pdf]


def _require(ds: xr.Dataset, *names: str) -> None:
    missing = [name for name in names if name not in ds.variables]
    if missing:
        raise ValueError(f"store lacks {missing}; it has {sorted(map(str, ds.variables))}")


def _resolve(ds: xr.Dataset, dim: str, value: Any) -> Any:
    """The coordinate value to select: ``value`` itself (floats matched to 1e-9), or the first one."""
    values = ds[dim].values
    if value is None:
        return values[0]
    if np.issubdtype(values.dtype, np.floating):
        hits = np.flatnonzero(np.isclose(values, float(value), rtol=0.0, atol=1e-9))
    else:
        hits = np.flatnonzero(values == value)
    if hits.size == 0:
        raise ValueError(f"{dim}={value!r} is not in the store; allowed values: {list(values.tolist())}")
    return values[hits[0]]


def _select(ds: xr.Dataset, variables: tuple[str, ...], **choices: Any) -> tuple[xr.Dataset, dict[str, Any]]:
    """Load ``variables`` at one value per named dim (None = first); return the slice and the choices."""
    _require(ds, *variables)
    chosen = {dim: _resolve(ds, dim, value) for dim, value in choices.items()}
    return ds[list(variables)].sel(chosen).compute(), chosen


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)


def _panel_title(ax: Axes, ds: xr.Dataset, condition: Any, detail: str) -> None:
    """Two short lines: '<condition id> · <detail>' and '<role>, λ = (λ1, λ2)'."""
    row = ds.sel(condition=condition)
    lam1, lam2 = float(row["lambda1"]), float(row["lambda2"])
    ax.set_title(f"{condition} · {detail}\n{row['role'].item()}, λ = ({lam1:g}, {lam2:g})", fontsize="small")


def _grid(n_rows: int, n_cols: int, *, sharex: bool = True, sharey: bool = True,
          panel: tuple[float, float] = _PANEL, legend_width: float = 0.0) -> tuple[Figure, np.ndarray]:
    """A constrained-layout grid of panels, widened by ``legend_width`` inches for a side legend."""
    fig = Figure(figsize=(panel[0] * n_cols + legend_width, panel[1] * n_rows + 0.9), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, sharex=sharex, sharey=sharey, squeeze=False)
    return fig, axes


def _title(fig: Figure, text: str) -> None:
    """A figure title wrapped to the figure's width."""
    fig.suptitle(text, wrap=True)


def _legend(fig: Figure, handles: list) -> None:
    """One legend for all panels, outside the axes on the right."""
    fig.legend(handles=handles, loc="outside right center", frameon=False)


def _seed_summary(values: xr.DataArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min and max over seeds (NaN where every seed is NaN)."""
    return (values.mean("seed").values, values.min("seed").values, values.max("seed").values)


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


def _positive(values: np.ndarray) -> np.ndarray:
    return np.where(values > 0, values, np.nan)


def _geometric_mean(ratios: np.ndarray) -> np.ndarray:
    """Geometric mean over the last axis of the positive finite entries (NaN where there are none)."""
    usable = np.isfinite(ratios) & (ratios > 0)
    logs = np.log(np.where(usable, ratios, 1.0))
    count = usable.sum(axis=-1)
    return np.where(count > 0, np.exp(logs.sum(axis=-1) / np.maximum(count, 1)), np.nan)


def _distinct_abs_lambdas(ds: xr.Dataset) -> list[float]:
    """|lambda1|, |lambda2| of one condition, once each (equal magnitudes share one reference line)."""
    return list(dict.fromkeys(abs(float(ds[name])) for name in ("lambda1", "lambda2")))


# ------------------------------------------------------------------------------ attention decay
def _attention_panel(ax: Axes, mean: np.ndarray, low: np.ndarray, high: np.ndarray,
                     abs_lambdas: list[float], filter_ratios: np.ndarray) -> None:
    """Per-head curves (head, distance) with seed bands, plus the lambda and filter references."""
    distance = np.arange(mean.shape[-1])
    palette = sns.color_palette("colorblind", mean.shape[0])
    ax.axvspan(-0.5, 0.5, color="0.93", zorder=0)
    for head, colour in enumerate(palette):
        if np.all(np.isnan(mean[head])):
            continue
        ax.fill_between(distance, _positive(low[head]), _positive(high[head]), color=colour, alpha=0.25, lw=0)
        ax.plot(distance, _positive(mean[head]), marker="o", ms=3, color=colour, lw=1.4)
    if mean.shape[-1] < 2:
        return
    at_one = mean[:, 1][np.isfinite(mean[:, 1])]
    if at_one.size == 0:
        return
    anchor = at_one.mean()
    tail = distance[1:]
    for lam, (colour, dashes) in zip(abs_lambdas, _FACTOR_STYLES):
        ax.plot(tail, reference_decay_curve(anchor, np.full(tail.size - 1, lam)),
                color=colour, ls=dashes, lw=1.2)
    filter_curve = reference_decay_curve(anchor, filter_ratios[: tail.size - 1])
    ax.plot(tail, _positive(filter_curve), color="black", lw=1.0)


def _attention_legend(fig: Figure, n_heads: int) -> None:
    palette = sns.color_palette("colorblind", n_heads)
    handles = [Line2D([], [], color=c, marker="o", ms=3, label=f"head {h}") for h, c in enumerate(palette)]
    handles += [
        Line2D([], [], color=colour, ls=dashes, label=f"|λ{k}|^(d−s) (factor {k})")
        for k, (colour, dashes) in enumerate(_FACTOR_STYLES, start=1)
    ]
    handles.append(Line2D([], [], color="black", label="exact filter r_eff (cumulative)"))
    handles.append(Patch(color="0.93", label="distance 0 (not identifiable)"))
    _legend(fig, handles)


def _attention_grid(hmm: xr.Dataset, stem: str | os.PathLike, col_dim: str, title: str) -> list[Path]:
    """Attention-vs-distance facets, rows = condition, columns = ``col_dim``, of an already sliced store."""
    conditions, cols = hmm["condition"].values, hmm[col_dim].values
    fig, axes = _grid(len(conditions), len(cols), legend_width=_LEGEND_WIDTH)
    for i, condition in enumerate(conditions):
        for j, col in enumerate(cols):
            cell = hmm.sel({"condition": condition, col_dim: col})
            mean, low, high = _seed_summary(cell["attention_distance"].transpose(..., "seed", "head", "distance"))
            _attention_panel(axes[i, j], mean, low, high, _distinct_abs_lambdas(cell), cell["filter_decay"].values)
            _panel_title(axes[i, j], hmm, condition, f"{col_dim} = {_fmt(col)}")
    axes[0, 0].set_yscale("log")
    axes[0, 0].yaxis.set_minor_locator(NullLocator())
    fig.supxlabel("distance d − s (tokens)")
    fig.supylabel("mean attention weight from the last query (probability)")
    _attention_legend(fig, int(hmm["n_heads"].max()))
    _title(fig, title)
    return _save(fig, stem)


@_themed
def attention_decay(hmm: xr.Dataset, stem: str | os.PathLike, *, a: float | None = None,
                    loss: str | None = None, d_head: int | None = None) -> list[Path]:
    """Attention vs distance per head, rows = condition, columns = n_heads, for one (a, loss, d_head)."""
    sliced, chosen = _select(hmm, _ATTENTION_VARIABLES, a=a, loss=loss, d_head=d_head)
    title = (
        "Attention from the last query position vs distance "
        f"(a = {_fmt(chosen['a'])}, loss on {chosen['loss']} positions, d_head = {chosen['d_head']})\n"
        f"mean over {hmm.sizes['seed']} seeds, {_SEED_SPREAD}; references anchored at distance 1"
    )
    return _attention_grid(sliced, stem, "n_heads", title)


@_themed
def attention_decay_by_a(hmm: xr.Dataset, stem: str | os.PathLike, *, n_heads: int | None = None,
                         loss: str | None = None, d_head: int | None = None) -> list[Path]:
    """Attention vs distance per head, rows = condition, columns = emission fidelity a, one model size."""
    sliced, chosen = _select(hmm, _ATTENTION_VARIABLES, n_heads=n_heads, loss=loss, d_head=d_head)
    title = (
        f"Attention vs distance across emission fidelity a ({chosen['n_heads']}-head models, "
        f"loss on {chosen['loss']} positions, d_head = {chosen['d_head']})\n"
        f"mean over {hmm.sizes['seed']} seeds, {_SEED_SPREAD}; references anchored at distance 1"
    )
    return _attention_grid(sliced, stem, "a", title)


@_themed
def decay_rates(hmm: xr.Dataset, stem: str | os.PathLike, *, d_head: int | None = None) -> list[Path]:
    """Fitted decay rate per (seed, head) against a, rows = loss positions, columns = condition."""
    sliced, chosen = _select(hmm, ("decay_rate", "decay_ci_low", "decay_ci_high", "filter_decay"), d_head=d_head)
    a_values = sliced["a"].values.astype(np.float64)
    spacing = np.min(np.diff(np.sort(a_values))) if a_values.size > 1 else 0.1
    n_heads_values = sliced["n_heads"].values
    offsets = (np.arange(n_heads_values.size) - (n_heads_values.size - 1) / 2) * 0.12 * spacing
    palette = sns.color_palette("colorblind", n_heads_values.size)
    filter_rate = _geometric_mean(sliced["filter_decay"].transpose("condition", "a", "step").values)

    conditions, losses = sliced["condition"].values, sliced["loss"].values
    fig, axes = _grid(len(losses), len(conditions), legend_width=_LEGEND_WIDTH)
    for i, loss_kind in enumerate(losses):
        for j, condition in enumerate(conditions):
            ax = axes[i, j]
            cell = sliced.sel(loss=loss_kind, condition=condition)
            for k, heads in enumerate(n_heads_values):
                model = cell.sel(n_heads=heads).transpose("a", ...)
                rate = model["decay_rate"].values.reshape(a_values.size, -1)
                low = rate - model["decay_ci_low"].values.reshape(a_values.size, -1)
                high = model["decay_ci_high"].values.reshape(a_values.size, -1) - rate
                x = np.broadcast_to((a_values + offsets[k])[:, None], rate.shape)
                ax.errorbar(x.ravel(), rate.ravel(), yerr=[low.ravel(), high.ravel()], fmt="o", ms=3,
                            color=palette[k], elinewidth=0.8, alpha=0.8)
            order = np.argsort(a_values)
            ax.plot(a_values[order], filter_rate[j][order], color="black", marker="s", ms=3, lw=1.0)
            ax.set_xticks(a_values)
            for lam, (colour, dashes) in zip(_distinct_abs_lambdas(cell), _FACTOR_STYLES):
                ax.axhline(lam, color=colour, ls=dashes, lw=1.1)
            _panel_title(ax, sliced, condition, f"loss on {loss_kind}")
    fig.supxlabel("emission fidelity a")
    fig.supylabel("attention decay rate per distance step")
    handles = [Line2D([], [], color=c, marker="o", ls="", label=f"{h}-head model heads")
               for h, c in zip(n_heads_values, palette)]
    handles += [Line2D([], [], color=colour, ls=dashes, label=f"|λ{k}|")
                for k, (colour, dashes) in enumerate(_FACTOR_STYLES, start=1)]
    handles.append(Line2D([], [], color="black", marker="s", ms=3, label="exact filter (geometric-mean r_eff)"))
    _legend(fig, handles)
    _title(fig, (
        f"Fitted attention decay rate vs emission fidelity (d_head = {chosen['d_head']}; one point per "
        "seed and head,\nbars: CI over query positions; fit on distances ≥ 1 of the last query's attention)"
    ))
    return _save(fig, stem)


# ------------------------------------------------------------------------------ loss and beliefs
def _heatmap_panels(fig: Figure, axes: np.ndarray, panels: dict[tuple[int, int], tuple[pd.DataFrame, np.ndarray]],
                    *, cmap: str, vmin: float, vmax: float, colorbar_label: str) -> None:
    """Heatmaps (colour table, annotation strings) on a shared colour scale with one colour bar."""
    for (i, j), (frame, annotation) in panels.items():
        sns.heatmap(frame, ax=axes[i, j], cmap=cmap, vmin=vmin, vmax=vmax, annot=annotation, fmt="",
                    cbar=False, linewidths=0.5, linecolor="white", annot_kws={"fontsize": "small"})
        axes[i, j].tick_params(axis="y", rotation=0)
        axes[i, j].grid(False)
    mappable = next(ax.collections[0] for ax in axes.flat if ax.collections)
    fig.colorbar(mappable, ax=axes, label=colorbar_label, shrink=0.8)


def _annotate(fmt: str, *tables: np.ndarray) -> np.ndarray:
    """Cell texts ``fmt.format(*values)`` from same-shaped tables, blank where the first is NaN."""
    texts = [fmt.format(*values) if np.isfinite(values[0]) else "" for values in zip(*(t.ravel() for t in tables))]
    return np.array(texts, dtype=object).reshape(tables[0].shape)


def _finite_max(values: np.ndarray, default: float) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.max()) if finite.size else default


@_themed
def excess_heatmap(hmm: xr.Dataset, stem: str | os.PathLike, *, loss: str | None = None) -> list[Path]:
    """Mean normalised excess loss over n_heads x d_head; rows = a, columns = condition."""
    sliced, chosen = _select(hmm, ("normalised_excess", "context_gain"), loss=loss)
    mean = sliced["normalised_excess"].mean("seed")
    a_values, conditions = sliced["a"].values, sliced["condition"].values
    fig, axes = _grid(len(a_values), len(conditions), sharex=False, sharey=False)
    panels = {}
    for i, a in enumerate(a_values):
        for j, condition in enumerate(conditions):
            table = mean.sel(a=a, condition=condition).transpose("n_heads", "d_head").to_pandas()
            panels[i, j] = table, _annotate("{:.3f}", table.to_numpy())
            gain = float(sliced["context_gain"].sel(a=a, condition=condition))
            _panel_title(axes[i, j], sliced, condition, f"a = {_fmt(a)}, gain {gain:.3g} nats")
    _heatmap_panels(fig, axes, panels, cmap="rocket_r", vmin=0.0, vmax=_finite_max(mean.values, 1.0),
                    colorbar_label="normalised excess loss (fraction of context gain)")
    for ax in axes.flat:
        ax.set_xlabel("d_head (dims per head)")
        ax.set_ylabel("n_heads")
    _title(fig, (
        "Normalised excess loss (L_model − L_opt) / (L_unigram − L_opt), paired against the exact filter\n"
        f"mean over {hmm.sizes['seed']} seeds; loss on {chosen['loss']} positions; lower is better, 0 = optimal"
    ))
    return _save(fig, stem)


@_themed
def belief_r2(hmm: xr.Dataset, stem: str | os.PathLike, *, loss: str | None = None,
              d_head: int | None = None) -> list[Path]:
    """Held-out belief-regression R^2 per target against n_heads; rows = a, columns = condition."""
    sliced, chosen = _select(hmm, ("belief_r2",), loss=loss, d_head=d_head)
    frame = sliced["belief_r2"].to_dataframe().reset_index()
    targets = list(sliced["target"].values)
    palette = dict(zip(targets, sns.color_palette("colorblind", len(targets))))
    a_values, conditions = sliced["a"].values, sliced["condition"].values
    fig, axes = _grid(len(a_values), len(conditions), sharex=False, legend_width=_LEGEND_WIDTH)
    for i, a in enumerate(a_values):
        for j, condition in enumerate(conditions):
            ax = axes[i, j]
            cell = frame[(frame["a"] == a) & (frame["condition"] == condition)].dropna(subset=["belief_r2"])
            if not cell.empty:
                sns.pointplot(data=cell, x="n_heads", y="belief_r2", hue="target", hue_order=targets,
                              order=list(sliced["n_heads"].values), palette=palette, errorbar=("pi", 100),
                              dodge=0.3, markersize=4, linewidth=1.2, ax=ax, legend=False)
            ax.axhline(1.0, color="0.6", lw=0.8, ls=":")
            _panel_title(ax, sliced, condition, f"a = {_fmt(a)}")
            ax.set_xlabel("")
            ax.set_ylabel("")
    fig.supxlabel("n_heads")
    fig.supylabel("held-out R² (dimensionless)")
    handles = [Line2D([], [], color=palette[t], marker="o", label=f"belief target: {t}") for t in targets]
    _legend(fig, handles)
    _title(fig, (
        "Linear read-out of exact belief states from the final residual stream: held-out R²\n"
        f"(loss on {chosen['loss']} positions, d_head = {chosen['d_head']}; points: mean, bars: min-max "
        f"over {hmm.sizes['seed']} seeds)"
    ))
    return _save(fig, stem)


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
    ax.set_title(title, fontsize="small")


@_themed
def belief_simplex(model_store: xr.Dataset, stem: str | os.PathLike) -> list[Path]:
    """Exact vs regressed beliefs per factor: simplex pairs for 3-state factors, scatter for 2-state ones.

    Reads ``belief_true_k`` / ``belief_pred_k`` (sample, state_k) for k = 1, 2, ... as present.
    """
    factors = [k for k in range(1, 10) if f"belief_true_{k}" in model_store and f"belief_pred_{k}" in model_store]
    if not factors:
        raise ValueError("model store needs belief_true_1 and belief_pred_1 (sample, state_1)")
    fig, axes = _grid(len(factors), 2, sharex=False, sharey=False, panel=(3.6, 3.4))
    for row, k in enumerate(factors):
        true = model_store[f"belief_true_{k}"].transpose(..., f"state_{k}").values
        pred = model_store[f"belief_pred_{k}"].transpose(..., f"state_{k}").values
        rmse = float(np.sqrt(np.mean((pred - true) ** 2)))
        if true.shape[1] == 3:
            colours = np.clip(true, 0.0, 1.0)
            _simplex_panel(axes[row, 0], true, colours, f"factor {k}: exact beliefs")
            _simplex_panel(axes[row, 1], pred, colours, f"factor {k}: linear read-out (RMSE {rmse:.3f})")
        elif true.shape[1] == 2:
            ax = axes[row, 0]
            ax.scatter(true[:, 1], pred[:, 1], s=6, alpha=0.6, color=sns.color_palette("colorblind")[0], lw=0)
            ax.plot([0, 1], [0, 1], color="0.4", ls="--", lw=0.8)
            ax.set_xlabel("exact P(state 2) (probability)")
            ax.set_ylabel("read-out P(state 2) (probability)")
            ax.set_title(f"factor {k} (2 states): read-out vs exact (RMSE {rmse:.3f})", fontsize="small")
            errors = axes[row, 1]
            errors.hist((pred - true)[:, 1], bins=30, color="0.5")
            errors.set_xlabel("read-out − exact P(state 2) (probability)")
            errors.set_ylabel("samples")
            errors.set_title(f"factor {k}: read-out error", fontsize="small")
        else:
            raise ValueError(f"belief_true_{k} has {true.shape[1]} states; only 2 or 3 can be drawn")
    _title(fig, (
        "Belief geometry: exact beliefs vs their linear read-out from the residual stream "
        f"({true.shape[0]} samples; colour = exact belief)"
    ))
    return _save(fig, stem)


@_themed
def ablation_matrix(hmm: xr.Dataset, stem: str | os.PathLike, *, loss: str | None = None,
                    d_head: int | None = None, n_heads: int | None = None) -> list[Path]:
    """Head x factor loss rise under mean-ablation (heads ranked per seed); rows = a, columns = condition."""
    if n_heads is None:
        n_heads = int(hmm["n_heads"].max())
    sliced, chosen = _select(hmm, ("ablation_factor_excess", "factor_context_gain"), loss=loss, d_head=d_head,
                              n_heads=n_heads)
    n_heads = int(chosen["n_heads"])
    ranked = rank_heads_by_factor(sliced["ablation_factor_excess"]).isel(head=slice(0, n_heads))
    nats = ranked.mean("seed")
    share = nats / sliced["factor_context_gain"]
    a_values, conditions = sliced["a"].values, sliced["condition"].values
    fig, axes = _grid(len(a_values), len(conditions), sharex=False, sharey=False,
                      panel=(3.0, 1.0 + 0.5 * n_heads))
    panels = {}
    for i, a in enumerate(a_values):
        for j, condition in enumerate(conditions):
            cell = {"a": a, "condition": condition}
            table = share.sel(cell).transpose("head", "factor").to_pandas()
            table.index = [f"rank {h + 1}" for h in table.index]
            table.columns = [f"factor {f}" for f in table.columns]
            texts = _annotate("{:.3g} nats\n({:.0%})", nats.sel(cell).transpose("head", "factor").values,
                              table.to_numpy())
            panels[i, j] = table, texts
            _panel_title(axes[i, j], sliced, condition, f"a = {_fmt(a)}")
    limit = _finite_max(np.abs(share.values), 1.0)
    _heatmap_panels(fig, axes, panels, cmap="vlag", vmin=-limit, vmax=limit,
                    colorbar_label="loss rise / factor's context gain")
    for ax in axes.flat:
        ax.set_ylabel("")
    fig.supylabel("head, ranked within each seed by factor-1 specificity")
    _title(fig, (
        f"Head ablation: rise in each factor's marginal loss ({n_heads}-head models, "
        f"d_head = {chosen['d_head']}, loss on {chosen['loss']} positions); nats and share of the "
        f"factor's context gain, mean over {hmm.sizes['seed']} seeds"
    ))
    return _save(fig, stem)


# ------------------------------------------------------------------------------------- readoff
@_themed
def readoff_accuracy(readoff: xr.Dataset, stem: str | os.PathLike) -> list[Path]:
    """Readoff accuracy and head-order Kendall tau over n_heads x d_head (mean [min, max] over seeds)."""
    readoff, _ = _select(readoff, ("accuracy", "preference_tau"))
    fig, axes = _grid(1, 2, sharex=False, sharey=False, panel=(4.2, 3.2))
    scales = {"accuracy": ("mako", 0.0, 1.0, "accuracy (fraction correct)"),
              "preference_tau": ("vlag", -1.0, 1.0, "Kendall τ, head 0 vs head 1")}
    for ax, (name, (cmap, vmin, vmax, label)) in zip(axes.flat, scales.items()):
        values = readoff[name].transpose("n_heads", "d_head", "seed")
        mean, low, high = _seed_summary(values)
        annotation = _annotate("{:.2f}\n[{:.2f}, {:.2f}]", mean, low, high)
        frame = values.mean("seed").to_pandas()
        sns.heatmap(frame, ax=ax, cmap=cmap, vmin=vmin, vmax=vmax, annot=annotation, fmt="",
                    cbar_kws={"label": label}, linewidths=0.5, linecolor="white", annot_kws={"fontsize": "small"})
        ax.grid(False)
        ax.set_xlabel("d_head (dims per head)")
        ax.set_ylabel("n_heads")
    axes[0, 0].set_title("held-out accuracy (chance 0.1)", fontsize="small")
    axes[0, 1].set_title("signal-preference order agreement (−1 = inverted)", fontsize="small")
    _title(fig, f"Readoff task: mean [min, max] over {readoff.sizes['seed']} seeds")
    return _save(fig, stem)


@_themed
def readoff_preference(readoff: xr.Dataset, stem: str | os.PathLike) -> list[Path]:
    """Per-head attention on each signal token; rows = seed, columns = (n_heads, d_head) config."""
    readoff, _ = _select(readoff, ("signal_preference", "preference_tau"))
    configs = [(h, d) for h in readoff["n_heads"].values for d in readoff["d_head"].values]
    seeds, signals = readoff["seed"].values, readoff["signal"].values
    n_heads_max = readoff.sizes["head"]
    palette = sns.color_palette("colorblind", n_heads_max)
    fig, axes = _grid(len(seeds), len(configs), panel=(2.8, 2.2), legend_width=_LEGEND_WIDTH)
    for i, seed in enumerate(seeds):
        for j, (heads, size) in enumerate(configs):
            ax = axes[i, j]
            cell = readoff.sel(seed=seed, n_heads=heads, d_head=size)
            preference = cell["signal_preference"].transpose("head", "signal").values
            drawn = np.flatnonzero(np.isfinite(preference).any(axis=1))
            width = 0.8 / max(drawn.size, 1)
            for slot, head in enumerate(drawn):
                ax.bar(signals + (slot - (drawn.size - 1) / 2) * width, preference[head], width=width,
                       color=palette[head])
            tau = float(cell["preference_tau"])
            tau_text = f", τ = {tau:.2f}" if np.isfinite(tau) else ""
            ax.set_title(f"n_heads {heads}, d_head {size}, seed {seed}{tau_text}", fontsize="small")
            ax.set_xticks(signals)
    fig.supxlabel("signal token")
    fig.supylabel("mean attention from the readoff position (probability)")
    handles = [Line2D([], [], color=c, lw=6, label=f"head {h}") for h, c in enumerate(palette)]
    _legend(fig, handles)
    _title(fig, "Readoff task: attention from the readoff position to each signal token, per head\n"
                 "(τ: Kendall tau between head 0's and head 1's preference orders; −1 = inverted)")
    return _save(fig, stem)


# ---------------------------------------------------------------------------------- regression
def _has_curve(regression: xr.Dataset, name: str) -> bool:
    return name in regression and "step" in regression[name].dims and bool(np.isfinite(regression[name].values).any())


def _model_label(n_heads: Any, d_head: Any) -> str:
    return f"{n_heads} head{'s' if int(n_heads) > 1 else ''}, d_head {d_head}"


def _config_frame(values: xr.DataArray) -> pd.DataFrame:
    frame = values.to_dataframe().reset_index()
    frame["model"] = [_model_label(h, d) for h, d in zip(frame["n_heads"], frame["d_head"])]
    return frame


def _seed_points(ax: Axes, values: xr.DataArray, kinds: list[str], palette: dict[str, Any]) -> None:
    """Each seed as a dot, coloured by attention kind, with the mean and min-max as black bars."""
    frame = _config_frame(values)
    name = values.name
    sns.stripplot(data=frame, x="model", y=name, hue="attention", hue_order=kinds, palette=palette,
                  dodge=True, jitter=False, size=4, alpha=0.7, ax=ax, legend=False)
    sns.pointplot(data=frame, x="model", y=name, hue="attention", hue_order=kinds,
                  palette=["black"] * len(kinds), dodge=0.8 - 0.8 / len(kinds), errorbar=("pi", 100),
                  markers="_", markersize=12, linestyle="none", ax=ax, legend=False)
    ax.set_xlabel("model")


def _curve_panel(ax: Axes, values: xr.DataArray, palette: dict[str, Any]) -> None:
    """Mean over seeds with a min-max band, colour = attention kind, line style = model config."""
    steps = values["step"].values
    dashes = ["-", "--", ":", "-."]
    configs = [(h, d) for h in values["n_heads"].values for d in values["d_head"].values]
    for attention in values["attention"].values:
        for k, (heads, size) in enumerate(configs):
            series = values.sel(attention=attention, n_heads=heads, d_head=size).transpose("seed", "step")
            mean, low, high = _seed_summary(series)
            ax.fill_between(steps, low, high, color=palette[attention], alpha=0.2, lw=0)
            ax.plot(steps, mean, color=palette[attention], ls=dashes[k % len(dashes)], lw=1.2,
                    label=f"{attention}, {_model_label(heads, size)}")
    ax.set_xlabel("training step")
    ax.legend(fontsize="x-small", loc="best")


@_themed
def regression_vs_gd(regression: xr.Dataset, stem: str | os.PathLike) -> list[Path]:
    """Loss and gradient cosine per attention kind against the GD / least-squares / zero baselines."""
    _require(regression, "loss", "gradient_cosine")
    regression = regression.compute()
    attrs = regression.attrs
    references = [(key, label, colour) for key, label, colour in (
        ("zero_loss", "zero predictor", "0.55"),
        ("gd_loss", f"one-step GD (η = {attrs.get('gd_eta', float('nan')):.3g})", "tab:red"),
        ("least_squares_loss", "least squares", "tab:green"),
    ) if key in attrs]
    curves = [name for name in ("train_loss", "cosine_curve") if _has_curve(regression, name)]
    fig, axes = _grid(1, 2 + len(curves), sharex=False, sharey=False, panel=(3.8, 3.3),
                      legend_width=_LEGEND_WIDTH * 0.6)
    kinds = list(regression["attention"].values)
    palette = dict(zip(kinds, sns.color_palette("colorblind", len(kinds))))

    loss_ax, cosine_ax = axes[0, 0], axes[0, 1]
    _seed_points(loss_ax, regression["loss"], kinds, palette)
    loss_ax.set_ylabel("eval loss ½(ŷ − y)² at the query")
    for key, text, colour in references:
        value = float(attrs[key])
        loss_ax.axhline(value, color=colour, ls="--", lw=1.0, label=f"{text}: {value:.4g}")
    loss_ax.legend(fontsize="x-small", loc="best")
    loss_ax.set_title("evaluation loss (dots: seeds; bars: mean, range)", fontsize="small")
    _seed_points(cosine_ax, regression["gradient_cosine"], kinds, palette)
    cosine_ax.set_ylabel("cosine of ∂ŷ/∂x_q, model vs GD")
    cosine_ax.axhline(1.0, color="tab:red", ls="--", lw=1.0)
    cosine_ax.set_title("agreement with one-step GD (1 = identical)", fontsize="small")

    for ax, name in zip(axes[0, 2:], curves):
        _curve_panel(ax, regression[name], palette)
        if name == "train_loss":
            ax.set_ylabel("training loss ½(ŷ − y)²")
            if "gd_loss" in attrs:
                ax.axhline(float(attrs["gd_loss"]), color="tab:red", ls="--", lw=1.0)
            ax.set_title("training loss (band: seeds; red: one-step GD)", fontsize="small")
        else:
            ax.set_ylabel("cosine of ∂ŷ/∂x_q, model vs GD")
            ax.set_title("gradient cosine over training", fontsize="small")

    _legend(fig, [Line2D([], [], color=palette[k], marker="o", ls="", label=f"{k} attention") for k in kinds])
    _title(fig, "In-context linear regression: trained attention vs one step of gradient descent "
                f"({regression.sizes['seed']} seeds per model)")
    return _save(fig, stem)


# ---------------------------------------------------------------------------------------- all
def render_all(hmm: xr.Dataset | None, readoff: xr.Dataset | None, regression: xr.Dataset | None,
               outdir: str | os.PathLike) -> list[Path]:
    """Write every figure the given stores support into ``outdir`` (a None store is skipped); return the files."""
    outdir = Path(outdir)
    paths: list[Path] = []
    if hmm is not None:
        paths += attention_decay(hmm, outdir / "attention_decay")
        if hmm.sizes["a"] > 1:
            paths += attention_decay_by_a(hmm, outdir / "attention_decay_by_a")
        paths += decay_rates(hmm, outdir / "decay_rates")
        paths += excess_heatmap(hmm, outdir / "excess_heatmap")
        paths += belief_r2(hmm, outdir / "belief_r2")
        paths += ablation_matrix(hmm, outdir / "ablation_matrix")
    if readoff is not None:
        paths += readoff_accuracy(readoff, outdir / "readoff_accuracy")
        paths += readoff_preference(readoff, outdir / "readoff_preference")
    if regression is not None:
        paths += regression_vs_gd(regression, outdir / "regression")
    return paths


# Which store each figure reads: a family's combined store, or "model" for one model's own store.
FIGURE_SOURCES: dict[str, str] = {
    "attention_decay": "hmm",
    "attention_decay_by_a": "hmm",
    "decay_rates": "hmm",
    "excess_heatmap": "hmm",
    "belief_r2": "hmm",
    "belief_simplex": "model",
    "ablation_matrix": "hmm",
    "readoff_accuracy": "readoff",
    "readoff_preference": "readoff",
    "regression": "regression",
}
_DRAW: dict[str, Callable[[xr.Dataset, str | os.PathLike], list[Path]]] = {
    "attention_decay": attention_decay,
    "attention_decay_by_a": attention_decay_by_a,
    "decay_rates": decay_rates,
    "excess_heatmap": excess_heatmap,
    "belief_r2": belief_r2,
    "belief_simplex": belief_simplex,
    "ablation_matrix": ablation_matrix,
    "readoff_accuracy": readoff_accuracy,
    "readoff_preference": readoff_preference,
    "regression": regression_vs_gd,
}


def draw(stem: str, store: xr.Dataset, path_stem: str | os.PathLike) -> list[Path]:
    """Render one figure by its stem (a key of FIGURE_CAPTIONS) from the store it reads."""
    if stem not in _DRAW:
        raise ValueError(f"unknown figure {stem!r}; known: {', '.join(_DRAW)}")
    return _DRAW[stem](store, path_stem)
