"""Hand-built combined stores whose verdicts are known by construction, and shortcuts to score them."""


from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr

from headshare.predictions import validate_predictions
from headshare.scoring import (
    quantities,
    score,
)

CONTEXT = 10


CITED_FIGURE = {"hmm": "excess_heatmap", "readoff": "readoff_accuracy", "regression": "regression_vs_gd"}


DISTANCES = np.arange(CONTEXT)


GRID = ("condition", "n_layers", "n_heads", "d_head", "a", "loss", "seed")  # cohort axes, then member axes


EVAL_STEPS = np.arange(100, 1300, 100)  # twelve evaluations: the plateau is the last three


EVAL_SEQUENCES = 8000


def geometric(rate: float) -> np.ndarray:
    return rate**DISTANCES / np.sum(rate**DISTANCES)


def hmm_store(
    conditions=("c",), a=(0.85,), n_heads=(1, 2, 3), seeds=(0, 1, 2), lambdas=(0.7, 0.7), n_layers=(1,)
) -> xr.Dataset:
    """A store after the contract in which every model learned, and every head decays at 0.7 with a tight CI."""
    heads, layers = max(n_heads), max(n_layers)
    coords = {
        "condition": np.array(conditions, dtype=object),
        "n_layers": np.array(n_layers),
        "n_heads": np.array(n_heads),
        "d_head": np.array([8]),
        "a": np.array(a, dtype=float),
        "loss": np.array(["all"], dtype=object),
        "seed": np.array(seeds),
        "layer": np.arange(layers),
        "head": np.arange(heads),
        "distance": DISTANCES,
        "step": np.arange(1, CONTEXT),
        "factor": np.array([1, 2]),
        "parity": np.array(["even", "odd"], dtype=object),
        "eval_step": EVAL_STEPS,
    }
    shape = {dim: len(values) for dim, values in coords.items()}

    def full(dims, value):
        return (dims, np.full([shape[d] for d in dims], value, dtype=float))

    store = xr.Dataset(
        {
            "context_gain": full(("condition", "a"), 0.3),
            "factor_older_info": full(("condition", "a", "factor"), 0.02),
            "factor_filter_decay": full(("condition", "a", "factor", "step"), 0.5),
            "normalised_excess": full(GRID, 0.01),
            "excess_loss": full(GRID, 0.003),
            "excess_loss_se": full(GRID, 1e-4),
            "attention_distance": full((*GRID, "layer", "head", "distance"), 0.0),
            "decay_rate": full((*GRID, "layer", "head"), 0.7),
            "decay_ci_low": full((*GRID, "layer", "head"), 0.69),
            "decay_ci_high": full((*GRID, "layer", "head"), 0.71),
            "decay_rate_parity": full((*GRID, "layer", "head", "parity"), 0.7),
            "decay_parity_ci_low": full((*GRID, "layer", "head", "parity"), 0.69),
            "decay_parity_ci_high": full((*GRID, "layer", "head", "parity"), 0.71),
            "ablation_factor_excess": full((*GRID, "layer", "head", "factor"), 0.0),
            "factor_overlap": full(GRID, 0.02),
            "belief_dimension": full(GRID, 4.0),
            "factored_dimension": full(("condition",), 4.0),
            "head_factor_share": full((*GRID, "layer", "head", "factor"), 0.05),
            "eval_metric": full((*GRID, "eval_step"), 0.0),
            "eval_metric_se": full((*GRID, "eval_step"), 1e-4),
            "eval_attention": full((*GRID, "eval_step", "layer", "head", "distance"), 0.0),
            "eval_factor_overlap": full((*GRID, "eval_step"), 0.02),
            "eval_belief_dimension": full((*GRID, "eval_step"), 4.0),
        },
        coords=coords,
        attrs={"config": json.dumps({"hmm": {"eval_sequences": EVAL_SEQUENCES}})},
    )
    store = with_convergence(store, GRID)
    store = store.assign_coords(
        lambda1=("condition", np.full(len(conditions), lambdas[0])),
        lambda2=("condition", np.full(len(conditions), lambdas[1])),
    )
    store["attention_distance"][:] = geometric(0.7)
    padded = ("attention_distance", "decay_rate", "decay_ci_low", "decay_ci_high", "ablation_factor_excess",
              "head_factor_share")
    for count in n_heads:  # heads beyond a model's n_heads are NaN, as in the contract
        for name in padded:
            store[name].loc[{"n_heads": count, "head": list(range(count, heads))}] = np.nan
    for depth in n_layers:  # and so are layers beyond its n_layers
        for name in padded:
            store[name].loc[{"n_layers": depth, "layer": list(range(depth, layers))}] = np.nan
    for count in n_heads:  # head h of layer 0 carries factor h+1 alone (when it exists)
        for head in range(min(count, 2)):
            store["ablation_factor_excess"].loc[{"n_heads": count, "layer": 0, "head": head, "factor": head + 1}] = 0.01
            store["head_factor_share"].loc[{"n_heads": count, "layer": 0, "head": head, "factor": head + 1}] = 0.8
    return steady(store)


def with_convergence(store: xr.Dataset, grid: tuple[str, ...], steps: int = 1200) -> xr.Dataset:
    """Every model converged after ``steps`` steps."""
    shape = [store.sizes[dim] for dim in grid]
    return store.assign(converged=(grid, np.ones(shape)), steps_trained=(grid, np.full(shape, float(steps))))


def steady(store: xr.Dataset) -> xr.Dataset:
    """Record the final excess and attention at every evaluation step: models that sat on their plateau."""
    store["eval_metric"][:] = store["excess_loss"].broadcast_like(store["eval_metric"]).transpose(*store["eval_metric"].dims)
    attention = store["attention_distance"].broadcast_like(store["eval_attention"])
    store["eval_attention"][:] = attention.transpose(*store["eval_attention"].dims)
    return store


def readoff_store(accuracy=1.0, tau=-1.0, preference=(0.1, 0.1, 0.1, 0.1)) -> xr.Dataset:
    """Every model with readoff ``accuracy``, Kendall ``tau`` and each head's attention ``preference`` on
    the four signal tokens."""
    coords = {"n_layers": [1], "n_heads": [1, 2], "d_head": [1, 4, 8], "seed": [0, 1, 2], "layer": [0],
              "head": [0, 1], "signal": np.arange(4)}
    dims = ("n_layers", "n_heads", "d_head", "seed")
    shape = (1, 2, 3, 3)
    store = xr.Dataset(
        {
            "accuracy": (dims, np.full(shape, accuracy)),
            "preference_tau": ((*dims, "layer"), np.full((*shape, 1), tau)),
            "signal_preference": ((*dims, "layer", "head", "signal"), np.broadcast_to(preference, (*shape, 1, 2, 4))),
        },
        coords=coords,
        attrs={"family": "readoff"},
    )
    return with_convergence(store, dims)


def regression_store(linear=1.02, softmax=1.3, far_ratio=1.0, far_cosine=0.995) -> xr.Dataset:
    """Loss ratios to GD per attention kind; away from the training point (N = 10, scale 1) of the
    generalisation grid every model's loss ratio is ``far_ratio`` and its gradient cosine ``far_cosine``."""
    gd_loss, zero_loss = 0.2061, 10 / 24
    ratio = np.array([linear, softmax], dtype=float)[:, None, None, None, None, None] * np.ones((2, 1, 1, 1, 1, 3))
    dims = ("attention", "architecture", "n_layers", "n_heads", "d_head", "seed")
    n_eval, scale = [5, 10, 50], [1.0, 2.0]
    trained = (np.array(n_eval)[:, None] == 10) & (np.array(scale)[None, :] == 1.0)
    gd_far = np.full((3, 2), 0.3)
    far = ratio[..., None, None] * np.where(trained, 1.0, far_ratio)
    store = xr.Dataset(
        {
            "gd_loss_ratio": (dims, ratio),
            "loss": (dims, ratio * gd_loss),
            "gradient_cosine": (dims, np.full((2, 1, 1, 1, 1, 3), 0.995)),
            "generalisation_loss": ((*dims, "n_eval", "scale"), far * gd_far),
            "generalisation_gd_loss": (("n_eval", "scale"), gd_far),
            "generalisation_gradient_cosine": (
                (*dims, "n_eval", "scale"), np.broadcast_to(np.where(trained, 0.995, far_cosine), (2, 1, 1, 1, 1, 3, 3, 2))
            ),
        },
        coords={
            "attention": np.array(["linear", "softmax"], dtype=object),
            "architecture": np.array(["plain"], dtype=object),
            "n_layers": [1],
            "n_heads": [1],
            "d_head": [11],
            "seed": [0, 1, 2],
            "n_eval": n_eval,
            "scale": scale,
        },
        attrs={"family": "regression", "gd_loss": gd_loss, "zero_loss": zero_loss},
    )
    return with_convergence(store, dims)


def document(*entries: dict, **defaults) -> dict:
    return validate_predictions(
        {"version": 1, "written": "2026-01-01", "defaults": defaults, "predictions": list(entries)}
    )


def entry(quantity: str, condition: dict, op: str, value, tolerance: float = 0.0, **extra) -> dict:
    return {
        "id": extra.pop("id", f"{quantity}-test"),
        "claim": "test claim",
        "source": {"section": "test"},
        "condition": condition,
        "quantity": quantity,
        "rule": {"op": op, "value": value, "tolerance": tolerance},
        "figure": CITED_FIGURE[quantities()[quantity].task],
        **extra,
    }


def scored(store: xr.Dataset | None, *entries: dict, readoff=None, regression=None, **defaults) -> pd.DataFrame:
    return score(document(*entries, **defaults), {"hmm": store, "readoff": readoff, "regression": regression})


def only_row(table: pd.DataFrame) -> pd.Series:
    assert len(table) == 1, table
    return table.iloc[0]


def set_excess(store: xr.Dataset, by_heads, seed=None) -> xr.Dataset:
    """Normalised excess per n_heads (and the matching nats at context gain 0.3) for one or all seeds,
    recorded unchanged over training."""
    where = {"n_heads": store["n_heads"].values} | ({} if seed is None else {"seed": seed})
    values = xr.DataArray(
        np.asarray(by_heads, dtype=float), dims=["n_heads"], coords={"n_heads": store["n_heads"].values}
    )
    store["normalised_excess"].loc[where] = values
    store["excess_loss"].loc[where] = values * 0.3
    return steady(store)


def set_nats(store: xr.Dataset, table) -> xr.Dataset:
    """Paired excess in nats per (seed, n_heads), normalised by the context gain 0.3, recorded unchanged."""
    values = xr.DataArray(
        np.asarray(table, dtype=float),
        dims=["seed", "n_heads"],
        coords={"seed": store["seed"].values, "n_heads": store["n_heads"].values},
    )
    store["excess_loss"].loc[{}] = values.broadcast_like(store["excess_loss"])
    store["normalised_excess"].loc[{}] = values.broadcast_like(store["excess_loss"]) / 0.3
    return steady(store)


def set_rates(store: xr.Dataset, rates, half_width=0.02, n_heads=2, **where) -> xr.Dataset:
    location = {"n_heads": n_heads, "layer": 0, "head": list(range(len(rates)))} | where
    rates = xr.DataArray(np.asarray(rates, dtype=float), dims=["head"], coords={"head": location["head"]})
    store["decay_rate"].loc[location] = rates
    store["decay_ci_low"].loc[location] = rates - half_width
    store["decay_ci_high"].loc[location] = rates + half_width
    curves = np.stack([geometric(rate) for rate in rates.values])
    store["attention_distance"].loc[location] = xr.DataArray(
        curves, dims=["head", "distance"], coords={"head": location["head"], "distance": DISTANCES}
    )
    return steady(store)


def parity_head(
    store: xr.Dataset, rate: float, favoured: int, n_heads: int = 2, head: int = 1, layer: int = 0
) -> xr.Dataset:
    """Make ``head`` of ``layer`` attend only to distances of one parity, decaying at ``rate`` along them."""
    curve = np.where(DISTANCES % 2 == favoured, rate**DISTANCES, 0.0)
    location = {"n_heads": n_heads, "layer": layer, "head": head}
    store["attention_distance"].loc[location] = curve / curve.sum()
    store["decay_rate"].loc[location] = np.nan  # no fit over all distances: every other point is zero
    parity = PARITY_NAMES[favoured]
    store["decay_rate_parity"].loc[location | {"parity": parity}] = rate
    store["decay_parity_ci_low"].loc[location | {"parity": parity}] = rate - 0.01
    store["decay_parity_ci_high"].loc[location | {"parity": parity}] = rate + 0.01
    for name in ("decay_rate_parity", "decay_parity_ci_low", "decay_parity_ci_high"):
        store[name].loc[location | {"parity": PARITY_NAMES[1 - favoured]}] = np.nan
    return steady(store)


PARITY_NAMES = ["even", "odd"]
