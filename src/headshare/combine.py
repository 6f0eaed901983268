"""Combine per-model evidence into one store per family: a dense grid with an index coord per axis.

Every grid axis (condition, a, loss, n_heads, d_head, seed; attention for regression) is a dimension with
an index coordinate, so ``xr.open_zarr("results/hmm.zarr").sel(condition=..., n_heads=2)`` works on any
axis. Models with fewer heads than the largest are padded with NaN along ``head``. Raw activation samples
stay in the per-model stores; only summary variables are combined.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import xarray as xr

from headshare.cohorts import Member
from headshare.config import hmm_conditions

GRID_AXES = {
    "hmm": ("condition", "a", "loss", "n_heads", "d_head", "seed"),
    "readoff": ("n_heads", "d_head", "seed"),
    "regression": ("attention", "n_heads", "d_head", "seed"),
}
SAMPLE_DIMS = {"sample", "simplex_point", "task", "query_pos", "key_pos", "d_model"}
CHUNKED_AXES = {"hmm": ("condition", "a", "loss"), "readoff": (), "regression": ("attention",)}


def _summary(store: xr.Dataset) -> xr.Dataset:
    """The variables of a per-model store that are comparable across the grid (no raw samples)."""
    keep = [name for name, var in store.data_vars.items() if not SAMPLE_DIMS & set(var.dims)]
    summary = store[keep]
    return summary.drop_vars([c for c in summary.coords if c not in summary.dims])


def _place_on_grid(summary: xr.Dataset, member: Member, family: str, max_heads: int) -> xr.Dataset:
    if "head" in summary.dims:
        summary = summary.reindex(head=np.arange(max_heads))
    coords = {axis: [member.coords[axis]] for axis in GRID_AXES[family]}
    return summary.expand_dims(coords)


def combine_members(
    family: str,
    members: Sequence[Member],
    stores: Sequence[xr.Dataset],
    training: Sequence[dict],
    attrs: dict,
) -> xr.Dataset:
    """One dense dataset of the family's grid from per-model stores and their training records."""
    max_heads = max(int(m.coords["n_heads"]) for m in members)
    pieces = []
    for member, store, record in zip(members, stores, training):
        summary = _summary(store)
        summary["final_train_loss"] = ((), record["final_loss"])
        pieces.append(_place_on_grid(summary, member, family, max_heads))
    combined = xr.combine_by_coords(pieces, combine_attrs="drop")
    for axis in GRID_AXES[family]:
        if combined[axis].dtype.kind in "OUT":
            combined = combined.assign_coords({axis: combined[axis].values.astype(object)})
    combined.attrs.update(family=family, **attrs)
    return combined


def add_hmm_references(combined: xr.Dataset, config: dict, data_stores: dict[tuple[str, float], xr.Dataset]) -> xr.Dataset:
    """Exact references per (condition, a) beside the models: optimum, gain, the filter's own decay."""
    conditions = {c.id: c for c in hmm_conditions(config)}
    ids = [str(c) for c in combined["condition"].values]
    fidelities = [float(a) for a in combined["a"].values]

    def stack(extract) -> np.ndarray:
        return np.array([[extract(data_stores[(c, a)]) for a in fidelities] for c in ids])

    predicted = slice(1, None)
    references = {
        "optimal_loss": (("condition", "a"), stack(lambda d: d.attrs["optimal_loss_mean"])),
        "unigram_loss": (("condition", "a"), stack(lambda d: d.attrs["unigram_loss"])),
        "context_gain": (("condition", "a"), stack(lambda d: d.attrs["context_gain"])),
        "factor_context_gain": (
            ("condition", "a", "factor"),
            stack(lambda d: (d["factor_optimal_loss"][:, 0] - d["factor_optimal_loss"][:, predicted].mean("position")).values),
        ),
        "factor_older_info": (
            ("condition", "a", "factor"),
            stack(lambda d: (d["factor_optimal_loss"][:, 1] - d["factor_optimal_loss"][:, -1]).values),
        ),
        "filter_decay": (("condition", "a", "step"), stack(lambda d: d["filter_decay"].values)),
        "factor_filter_decay": (("condition", "a", "factor", "step"), stack(lambda d: d["factor_filter_decay"].values)),
    }
    combined = combined.assign(references).assign_coords(
        step=np.arange(1, len(combined["distance"])),
        role=("condition", np.array([conditions[c].role for c in ids], dtype=object)),
        kind1=("condition", np.array([conditions[c].factors[0].kind for c in ids], dtype=object)),
        kind2=("condition", np.array([conditions[c].factors[1].kind for c in ids], dtype=object)),
        lambda1=("condition", [conditions[c].factors[0].lam for c in ids]),
        lambda2=("condition", [conditions[c].factors[1].lam for c in ids]),
    )
    combined["factor_older_info"].attrs["description"] = (
        "H(X_t|X_t-1) - H(X_t|X_<t) at the last position: what tokens older than the current one can gain (nats)"
    )
    return combined


def chunk_for_slices(combined: xr.Dataset, family: str) -> xr.Dataset:
    """Chunks hold one (condition, a, loss) block: one model or one head across seeds is a single read."""
    for variable in combined.variables.values():
        variable.encoding["chunks"] = tuple(
            1 if dim in CHUNKED_AXES[family] else size for dim, size in zip(variable.dims, variable.shape)
        ) or None
    return combined


def training_record(path: str) -> dict:
    with open(path) as handle:
        return json.load(handle)
