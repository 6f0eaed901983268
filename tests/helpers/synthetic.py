"""Synthetic combined result stores that follow the store contract, for tests of readers.

The values are plausible rather than exact: attention decays geometrically at a head-specific
rate tied to the factor it tracks, the exact filter forgets faster than |lambda| when emissions
are strong (ratio |lambda| * (1 - 2 (a - 1/3)^2), close to the published exact values), more
heads and larger heads lower the excess loss, and two-head readoff models rank the signal
tokens in opposite orders. Deeper models (the ``n_layers`` axis) come a little closer to the filter,
and each of their layers decays a little faster than the one below. Heads beyond a model's n_heads and
layers beyond its n_layers are NaN, as in the real stores. Every store is checked against its task's
store contract (variables and dim order). Every builder is deterministic given ``rng_seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from headshare.analysis.readoff import kendall_tau, preference_order
from headshare.store import write_store
from headshare.tasks.base import StoreContract
from headshare.tasks.hmm.contract import COMBINED_STORE as HMM_CONTRACT
from headshare.tasks.readoff.contract import COMBINED_STORE as READOFF_CONTRACT
from headshare.tasks.regression.contract import COMBINED_STORE as REGRESSION_CONTRACT


class ConditionSpec(NamedTuple):
    """One product condition: an id, its role and the two factors' kinds and eigenvalues."""

    id: str
    role: str
    kind1: str
    lambda1: float
    kind2: str
    lambda2: float


DEFAULT_CONDITIONS = (
    ConditionSpec("m3_0.7_m3_0.7", "preregistered", "mess3", 0.7, "mess3", 0.7),
    ConditionSpec("m3_0.7_m3_-0.3", "preregistered", "mess3", 0.7, "mess3", -0.3),
    ConditionSpec("ts_0.7_ts_-0.7", "substitute", "two_state", 0.7, "two_state", -0.7),
)
N_STATES = {"mess3": 3, "two_state": 2}
HMM_GRID_DIMS = ("condition", "a", "loss", "n_heads", "d_head", "seed")  # build order; stores follow the contract
TARGETS = ("joint", "factor1", "factor2")


def filter_ratio(lam: np.ndarray, a: np.ndarray) -> np.ndarray:
    """The synthetic exact filter's per-step forgetting ratio for a factor."""
    return np.abs(lam) * (1.0 - 2.0 * (a - 1.0 / 3.0) ** 2)


def _object_coord(values: Sequence[str]) -> np.ndarray:
    return np.array(list(values), dtype=object)


def _with_layers(store: xr.Dataset, n_layers: Sequence[int], improving: Sequence[str]) -> xr.Dataset:
    """Add the ``n_layers`` grid axis to every per-model variable and a NaN-padded ``layer`` dim to the
    per-head ones: layer l of an L-layer model holds the one-layer values times 0.9**l (a faster decay),
    and the ``improving`` variables (losses) shrink by 0.9**(L-1)."""
    per_model = [name for name, var in store.data_vars.items() if "seed" in var.dims]
    layer = xr.DataArray(np.arange(max(n_layers)), dims="layer")
    stacked = []
    for depth in n_layers:
        models = {}
        for name in per_model:
            var = store[name]
            if "head" in var.dims:
                models[name] = (var * 0.9**layer).where(layer < depth)
            elif name in improving:
                models[name] = var * 0.9 ** (depth - 1)
            else:
                models[name] = var
        stacked.append(xr.Dataset(models))
    deep = xr.concat(stacked, pd.Index(np.asarray(n_layers, dtype=np.int64), name="n_layers"))
    return store.drop_vars(per_model).assign(deep.data_vars).assign_coords(layer=layer.values)


EVAL_STEPS = np.arange(100, 1300, 100)


def _with_training(store: xr.Dataset, metric: str, curves: dict[str, str] | None = None) -> xr.Dataset:
    """Add every model's training record: converged after 1200 steps, its held-out metric falling as
    ``metric`` + 0.05 (100 / step) onto the plateau ``metric``, and each ``curves`` variable (eval name ->
    final variable) constant over training."""
    final = store[metric]
    steps = xr.DataArray(EVAL_STEPS, dims="eval_step", coords={"eval_step": EVAL_STEPS})
    curve = final + 0.05 * (100.0 / steps)
    models = final.notnull()
    extra = {name: store[source].expand_dims(eval_step=EVAL_STEPS) for name, source in (curves or {}).items()}
    return store.assign(
        converged=models.astype(float),
        steps_trained=xr.full_like(final, float(EVAL_STEPS[-1])),
        plateau=curve.isel(eval_step=slice(-4, None)).mean("eval_step"),
        plateau_se=xr.full_like(final, 1e-4),
        convergence_fall=xr.full_like(final, 1e-4),
        eval_metric=curve,
        eval_metric_se=xr.full_like(curve, 1e-4),
        **extra,
    )


def _following(store: xr.Dataset, contract: StoreContract) -> xr.Dataset:
    """``store`` with every variable's dims in the contract's order, checked against the contract: it holds
    exactly the contract's variables, so a reader tested on it cannot rely on one the real stores lack."""
    extra = sorted(set(store.data_vars) - set(contract.variables))
    if extra:
        raise ValueError(f"synthetic store has variables outside its contract: {extra}")
    arranged = store.assign({name: store[name].transpose(*contract.dims(name)) for name in contract.variables})
    contract.check(arranged, "synthetic store")
    return arranged


def synthetic_hmm_store(
    *,
    conditions: Sequence[ConditionSpec] = DEFAULT_CONDITIONS,
    n_layers: Sequence[int] = (1,),
    a: Sequence[float] = (0.85, 0.6),
    loss: Sequence[str] = ("all", "last"),
    n_heads: Sequence[int] = (1, 2),
    d_head: Sequence[int] = (4, 8),
    seeds: Sequence[int] = (0, 1),
    context: int = 6,
    rng_seed: int = 0,
) -> xr.Dataset:
    """A results/hmm.zarr-shaped dataset over the given grid (dense cross product)."""
    rng = np.random.default_rng(rng_seed)
    max_heads = max(n_heads)
    lam = np.array([[c.lambda1, c.lambda2] for c in conditions])  # (C, 2)
    states = np.array([[N_STATES[c.kind1], N_STATES[c.kind2]] for c in conditions])  # (C, 2)
    a_arr = np.asarray(a, dtype=np.float64)
    grid_shape = (len(conditions), len(a), len(loss), len(n_heads), len(d_head), len(seeds))

    # Exact references, (C, A[, F]).
    factor_gain = 1.5 * (a_arr[None, :, None] - 1.0 / states[:, None, :]) ** 2 * lam[:, None, :] ** 2
    factor_older = factor_gain * 0.3 * np.abs(lam[:, None, :])
    unigram = np.log(states).sum(axis=1)[:, None] * np.ones(len(a))
    context_gain = factor_gain.sum(axis=2)
    optimal = unigram - context_gain
    steps = np.arange(1, context)
    ratio = filter_ratio(lam[:, None, :], a_arr[None, :, None])  # (C, A, F)
    step_drift = 1.0 - 0.02 * (steps - 1)
    factor_filter_decay = ratio[..., None] * step_drift  # (C, A, F, step)
    filter_decay = factor_filter_decay.max(axis=2)

    # Model quality: broader models come closer to the filter; "last" training is noisier.
    heads_b = np.asarray(n_heads)[None, None, None, :, None, None]
    dhead_b = np.asarray(d_head)[None, None, None, None, :, None]
    hetero = 1.0 + np.abs(lam[:, 0] - lam[:, 1])[:, None, None, None, None, None]
    normalised = (0.01 + 0.15 * hetero / (heads_b * dhead_b)) * rng.lognormal(0.0, 0.15, grid_shape)
    gain_b = context_gain[:, :, None, None, None, None]
    excess = normalised * gain_b
    positions = np.arange(1, context + 1)
    profile = 1.0 - 0.4**positions
    profile = profile / profile.mean()
    model_loss = (
        unigram[:, :, None, None, None, None, None]
        - gain_b[..., None] * profile
        + excess[..., None]
    )

    # Attention from the last query: head k tracks factor (k mod 2); last-position training
    # matches the filter, all-position training decays at 0.75x its rate.
    loss_scale = np.where(np.asarray(loss) == "last", 1.0, 0.75)[None, None, :, None, None, None]
    head_factor = np.arange(max_heads) % 2
    single = (np.asarray(n_heads) == 1)[None, None, None, :, None, None, None]
    head_ratio = np.where(single, ratio.max(axis=2)[:, :, None, None, None, None, None],
                          ratio[:, :, head_factor][:, :, None, None, None, None, :])
    rate = head_ratio * loss_scale[..., None] * rng.lognormal(0.0, 0.05, grid_shape + (max_heads,))
    distance = np.arange(context)
    weight_zero = rng.uniform(0.1, 0.6, grid_shape + (max_heads,))
    tail = rate[..., None] ** (distance[1:] - 1)
    tail = tail / tail.sum(axis=-1, keepdims=True) * (1.0 - weight_zero)[..., None]
    attention = np.concatenate([weight_zero[..., None], tail], axis=-1)
    attention_all = 0.9 * attention + 0.1 / context
    exists = np.arange(max_heads) < np.asarray(n_heads)[None, None, None, :, None, None, None]
    head_mask = np.where(exists, 1.0, np.nan)  # broadcasts over GRID + head

    ci = 0.03 * rng.uniform(0.5, 1.5, rate.shape)
    parity_offset = np.array([0.02, -0.02])

    r2_base = 1.0 - 0.05 / (heads_b * dhead_b)
    belief_r2 = np.clip(
        r2_base[..., None] - np.array([0.02, 0.0, 0.01]) - rng.uniform(0, 0.01, grid_shape + (3,)),
        0.0, 1.0,
    )

    # Ablation: multi-head models assign heads to factors, in an order that differs by seed.
    flip = (np.asarray(seeds) % 2 == 1)[None, None, None, None, None, :, None]
    assigned = np.where(flip, 1 - head_factor, head_factor)  # GRID + head
    carries = assigned[..., None] == np.arange(2)  # GRID + head + factor
    gain_hf = factor_gain[:, :, None, None, None, None, None, :]
    ablation_factor = np.where(single[..., None], 0.7 * gain_hf,
                               np.where(carries, 0.6 * gain_hf, 0.04 * gain_hf))
    ablation_factor = ablation_factor * rng.lognormal(0.0, 0.1, grid_shape + (max_heads, 2))
    ablation_factor = ablation_factor * head_mask[..., None]

    states = np.array([[N_STATES[c.kind1], N_STATES[c.kind2]] for c in conditions])
    factored = (states - 1).sum(axis=1).astype(float)
    total_damage = ablation_factor.sum(axis=-1, keepdims=True)
    grid_head = (*HMM_GRID_DIMS, "head")
    coords = {
        "condition": ("condition", _object_coord(c.id for c in conditions)),
        "role": ("condition", _object_coord(c.role for c in conditions)),
        "kind1": ("condition", _object_coord(c.kind1 for c in conditions)),
        "kind2": ("condition", _object_coord(c.kind2 for c in conditions)),
        "lambda1": ("condition", lam[:, 0]),
        "lambda2": ("condition", lam[:, 1]),
        "a": ("a", a_arr),
        "loss": ("loss", _object_coord(loss)),
        "n_heads": ("n_heads", np.asarray(n_heads, dtype=np.int64)),
        "d_head": ("d_head", np.asarray(d_head, dtype=np.int64)),
        "seed": ("seed", np.asarray(seeds, dtype=np.int64)),
        "head": ("head", np.arange(max_heads)),
        "distance": ("distance", distance),
        "step": ("step", steps),
        "position": ("position", positions),
        "factor": ("factor", np.array([1, 2])),
        "parity": ("parity", _object_coord(["even", "odd"])),
        "target": ("target", _object_coord(TARGETS)),
    }
    data = {
        "optimal_loss": (("condition", "a"), optimal),
        "unigram_loss": (("condition", "a"), unigram),
        "context_gain": (("condition", "a"), context_gain),
        "factor_context_gain": (("condition", "a", "factor"), factor_gain),
        "factor_older_info": (("condition", "a", "factor"), factor_older),
        "filter_decay": (("condition", "a", "step"), filter_decay),
        "factor_filter_decay": (("condition", "a", "factor", "step"), factor_filter_decay),
        "model_loss": ((*HMM_GRID_DIMS, "position"), model_loss),
        "excess_loss": (HMM_GRID_DIMS, excess),
        "excess_loss_se": (HMM_GRID_DIMS, 1e-4 + 0.05 * excess),
        "normalised_excess": (HMM_GRID_DIMS, normalised),
        "factor_excess_loss": ((*HMM_GRID_DIMS, "factor"), normalised[..., None] * factor_gain[:, :, None, None, None, None, :]),
        "final_train_loss": (HMM_GRID_DIMS, optimal[:, :, None, None, None, None] + 1.1 * excess),
        "attention_distance": ((*grid_head, "distance"), attention * head_mask[..., None]),
        "attention_distance_all": ((*grid_head, "distance"), attention_all * head_mask[..., None]),
        "decay_rate": (grid_head, rate * head_mask),
        "decay_ci_low": (grid_head, (rate - ci) * head_mask),
        "decay_ci_high": (grid_head, (rate + ci) * head_mask),
        "decay_rate_parity": ((*grid_head, "parity"), (rate[..., None] + parity_offset) * head_mask[..., None]),
        "decay_parity_ci_low": ((*grid_head, "parity"), (rate[..., None] + parity_offset - ci[..., None]) * head_mask[..., None]),
        "decay_parity_ci_high": ((*grid_head, "parity"), (rate[..., None] + parity_offset + ci[..., None]) * head_mask[..., None]),
        "belief_r2": ((*HMM_GRID_DIMS, "target"), belief_r2),
        "belief_rmse": ((*HMM_GRID_DIMS, "target"), 0.2 * np.sqrt(1.0 - belief_r2)),
        "ablation_factor_excess": ((*grid_head, "factor"), ablation_factor),
        "ablation_excess": (grid_head, ablation_factor.sum(axis=-1) * 1.05),
        # Geometry: factors near-orthogonal, the joint read-out at the factored count, heads loading on the
        # factor their ablation damages most.
        "factor_overlap": (HMM_GRID_DIMS, rng.uniform(0.0, 0.08, grid_shape)),
        "factor_min_angle": (HMM_GRID_DIMS, rng.uniform(70.0, 90.0, grid_shape)),
        "belief_dimension": (HMM_GRID_DIMS, np.broadcast_to(factored[:, None, None, None, None, None], grid_shape).copy()),
        "head_factor_share": ((*grid_head, "factor"), 0.9 * np.divide(
            ablation_factor, total_damage, out=np.full_like(ablation_factor, np.nan), where=total_damage > 0
        )),
        "factored_dimension": (("condition",), factored),
        "product_dimension": (("condition",), (states.prod(axis=1) - 1).astype(float)),
    }
    store = xr.Dataset(data, coords=coords, attrs={"task": "hmm", "context": context, "synthetic": 1})
    losses = ("excess_loss", "excess_loss_se", "normalised_excess", "factor_excess_loss", "factor_overlap")
    deep = _with_layers(store, n_layers, losses)
    curves = {"eval_attention": "attention_distance", "eval_factor_overlap": "factor_overlap",
              "eval_belief_dimension": "belief_dimension"}
    return _following(_with_training(deep, "excess_loss", curves), HMM_CONTRACT)


def synthetic_readoff_store(
    *,
    n_layers: Sequence[int] = (1,),
    n_heads: Sequence[int] = (1, 2),
    d_head: Sequence[int] = (1, 4),
    seeds: Sequence[int] = (0, 1, 2),
    rng_seed: int = 1,
) -> xr.Dataset:
    """A results/readoff.zarr-shaped dataset; in every layer, heads 0 and 1 prefer signals in inverted orders.

    In the last seed the second head keeps the reversed order but swaps its two middle
    signals, so that seed's Kendall tau is -2/3 rather than -1.
    """
    rng = np.random.default_rng(rng_seed)
    n_signal, max_heads, max_layers = 4, max(n_heads), max(n_layers)
    grid_shape = (len(n_layers), len(n_heads), len(d_head), len(seeds))
    layers_b = np.asarray(n_layers)[:, None, None, None]
    heads_b = np.asarray(n_heads)[None, :, None, None]
    dhead_b = np.asarray(d_head)[None, None, :, None]
    solved = (heads_b * layers_b >= 2) | (dhead_b >= 4)
    accuracy = np.where(solved, 1.0 - rng.uniform(0.0, 0.01, grid_shape), rng.uniform(0.55, 0.7, grid_shape))
    loss = 0.02 + 2.0 * (1.0 - accuracy)

    attention_by_rank = np.array([0.45, 0.3, 0.15, 0.08])
    preference = np.full(grid_shape + (max_layers, max_heads, n_signal), np.nan)
    order = np.full(preference.shape, np.nan)
    tau = np.full(grid_shape + (max_layers,), np.nan)
    for index in np.ndindex(grid_shape):
        depth, heads = n_layers[index[0]], n_heads[index[1]]
        for layer in range(depth):
            first = rng.permutation(n_signal)
            orders = [first, first[::-1]]
            if index[3] == len(seeds) - 1:
                orders[1] = first[[3, 1, 2, 0]]
            for h in range(heads):
                preference[(*index, layer, h, orders[h % 2])] = attention_by_rank * rng.uniform(0.95, 1.05)
            order[(*index, layer, slice(0, heads))] = preference_order(preference[(*index, layer, slice(0, heads))])
            if heads >= 2:
                ranked = preference_order(preference[(*index, layer, slice(0, 2))])
                tau[(*index, layer)] = kendall_tau(ranked[0], ranked[1])

    grid = ("n_layers", "n_heads", "d_head", "seed")
    store = xr.Dataset(
        {
            "accuracy": (grid, accuracy),
            "loss": (grid, loss),
            "final_train_loss": (grid, 0.9 * loss),
            "signal_preference": ((*grid, "layer", "head", "signal"), preference),
            "preference_order": ((*grid, "layer", "head", "rank"), order),
            "preference_tau": ((*grid, "layer"), tau),
        },
        coords={
            "n_layers": np.asarray(n_layers, dtype=np.int64),
            "n_heads": np.asarray(n_heads, dtype=np.int64),
            "d_head": np.asarray(d_head, dtype=np.int64),
            "seed": np.asarray(seeds, dtype=np.int64),
            "layer": np.arange(max_layers),
            "head": np.arange(max_heads),
            "signal": np.arange(n_signal),
            "rank": np.arange(n_signal),
        },
        attrs={"task": "readoff", "synthetic": 1},
    )
    return _following(_with_training(store, "loss", {"eval_accuracy": "accuracy"}), READOFF_CONTRACT)


GD_LOSS, ZERO_LOSS, GD_ETA = 0.2061, 10.0 / 24.0, 6.06


def synthetic_regression_store(
    *,
    architecture: Sequence[str] = ("plain", "recurrent"),
    n_layers: Sequence[int] = (1,),
    n_heads: Sequence[int] = (1, 2),
    d_head: Sequence[int] = (11,),
    seeds: Sequence[int] = (0, 1, 2),
    rng_seed: int = 2,
) -> xr.Dataset:
    """A results/regression.zarr-shaped dataset: linear attention reaches GD, softmax does not; a context is
    a weight update of a linear model only."""
    rng = np.random.default_rng(rng_seed)
    attention = ("linear", "softmax")
    grid_shape = (2, len(architecture), len(n_heads), len(d_head), len(seeds))
    final_loss = np.array([GD_LOSS, 0.29])[:, None, None, None, None] * rng.lognormal(0.0, 0.01, grid_shape)
    cosine = np.array([0.995, 0.8])[:, None, None, None, None] - rng.uniform(0, 0.02, grid_shape)
    grid = ("attention", "architecture", "n_heads", "d_head", "seed")
    contexts = 4
    per_context = (*grid, "curry_context")
    residual = np.array([1e-8, 0.2])[:, None, None, None, None, None] * rng.lognormal(0.0, 0.3, (*grid_shape, contexts))
    store = xr.Dataset(
        {
            "loss": (grid, final_loss),
            "gd_loss_ratio": (grid, final_loss / GD_LOSS),
            "gradient_cosine": (grid, cosine),
            "prediction_l2": (grid, np.sqrt(np.maximum(final_loss - GD_LOSS, 0.0)) + 0.01),
            "final_train_loss": (grid, 1.02 * final_loss),
            "least_squares_gap_closed": (grid, (GD_LOSS - final_loss) / GD_LOSS),
            "multistep_loss_ratio": (grid, final_loss / GD_LOSS),
            "multistep_gradient_cosine": (grid, cosine),
            "gdpp_loss_ratio": (grid, 1.2 * final_loss / GD_LOSS),
            "gdpp_gradient_cosine": (grid, cosine - 0.01),
            "curry_residual": (per_context, residual),
            "curry_distance": (per_context, rng.uniform(0.02, 0.1, residual.shape)),
            "curry_finetune_cosine": (per_context, rng.uniform(0.1, 0.4, residual.shape)),
            "curry_gd_cosine": (per_context, np.broadcast_to(cosine[..., None], residual.shape).copy()),
        },
        coords={
            "attention": _object_coord(attention),
            "architecture": _object_coord(architecture),
            "n_heads": np.asarray(n_heads, dtype=np.int64),
            "d_head": np.asarray(d_head, dtype=np.int64),
            "seed": np.asarray(seeds, dtype=np.int64),
            "curry_context": np.arange(contexts),
        },
        attrs={
            "task": "regression",
            "gd_loss": GD_LOSS,
            "least_squares_loss": 0.0,
            "zero_loss": ZERO_LOSS,
            "gd_eta": GD_ETA,
            "n_context": 10,
            "synthetic": 1,
        },
    )
    store = store.merge(_generalisation(grid_shape, rng)).merge(_depth_references(n_layers))
    losses = ("loss", "gd_loss_ratio", "prediction_l2", "final_train_loss", "generalisation_loss")
    return _following(_with_training(_with_layers(store, n_layers, losses), "gd_loss_ratio"), REGRESSION_CONTRACT)


def _depth_references(n_layers: Sequence[int]) -> xr.Dataset:
    """K-step GD and GD++ losses falling with K, and their steps (NaN beyond K)."""
    depth = np.asarray(n_layers, dtype=np.int64)
    step = np.arange(1, depth.max() + 1)
    etas = np.where(step[None, :] <= depth[:, None], GD_ETA * step[None, :], np.nan)
    return xr.Dataset(
        {
            "multistep_gd_loss": (("depth",), GD_LOSS * 0.7 ** (depth - 1)),
            "gdpp_loss": (("depth",), GD_LOSS * 0.45 ** (depth - 1)),
            "multistep_eta": (("depth", "step"), etas),
            "gdpp_eta": (("depth", "step"), 2 * etas),
            "gdpp_gamma": (("depth", "step"), np.where(np.isnan(etas), np.nan, 1.0)),
        },
        coords={"depth": depth, "step": step},
    )


def _generalisation(grid_shape: tuple[int, ...], rng: np.random.Generator) -> xr.Dataset:
    """Losses and cosines over (n_eval, scale): GD's loss falls with N and grows with the scale; linear
    attention stays on it, softmax drifts away from it the further from the training distribution."""
    n_eval, scale = np.array([5, 10, 20, 35, 50]), np.array([0.5, 1.0, 1.5, 2.0])
    gd = GD_LOSS * np.sqrt(10 / n_eval)[:, None] * scale[None, :] ** 4
    least_squares = np.maximum(10 - n_eval, 0)[:, None] / 24 * scale[None, :] ** 2
    distance = np.abs(np.log(n_eval / 10))[:, None] + np.abs(scale - 1)[None, :]  # 0 at the training point
    model_ratio = np.array([1.0, 1.3])[:, None, None] + np.array([0.0, 0.5])[:, None, None] * distance
    model_cosine = np.array([0.995, 0.8])[:, None, None] - np.array([0.0, 0.1])[:, None, None] * distance
    shape = (*grid_shape, len(n_eval), len(scale))
    expand = (slice(None), None, None, None, None)
    dims = ("attention", "architecture", "n_heads", "d_head", "seed", "n_eval", "scale")
    return xr.Dataset(
        {
            "generalisation_loss": (dims, gd * model_ratio[expand] * rng.lognormal(0.0, 0.01, shape)),
            "generalisation_gradient_cosine": (dims, np.broadcast_to(model_cosine[expand], shape).copy()),
            "generalisation_prediction_rmse": (dims, np.broadcast_to(0.01 + distance, shape).copy()),
            "generalisation_gd_loss": (("n_eval", "scale"), gd),
            "generalisation_least_squares_loss": (("n_eval", "scale"), least_squares),
        },
        coords={"n_eval": n_eval, "scale": scale},
    )


def synthetic_belief_store(
    *, n_samples: int = 400, kinds: tuple[str, str] = ("mess3", "two_state"), rng_seed: int = 3
) -> xr.Dataset:
    """A per-model store's exact and regressed beliefs per factor (``belief_true_k``, ``belief_pred_k``)."""
    rng = np.random.default_rng(rng_seed)
    data = {}
    for k, kind in enumerate(kinds, start=1):
        true = rng.dirichlet(np.full(N_STATES[kind], 0.7), size=n_samples)
        data[f"belief_true_{k}"] = (("simplex_point", f"state_{k}"), true)
        data[f"belief_pred_{k}"] = (("simplex_point", f"state_{k}"), true + rng.normal(0.0, 0.03, true.shape))
    return xr.Dataset(data, attrs={"synthetic": 1})


def write_synthetic_stores(directory: str | Path) -> dict[str, Path]:
    """Write the three default combined stores as results/{hmm,readoff,regression}.zarr would be."""
    directory = Path(directory)
    builders = {
        "hmm": synthetic_hmm_store,
        "readoff": synthetic_readoff_store,
        "regression": synthetic_regression_store,
    }
    return {name: write_store(build(), directory / f"{name}.zarr") for name, build in builders.items()}
