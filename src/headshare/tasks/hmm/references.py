"""Exact references beside the models in the combined hmm store: optimum, context gain, the filter's decay."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import xarray as xr

from headshare.grid import same_value
from headshare.tasks.hmm.settings import HMMSettings

PREDICTED = slice(1, None)  # positions the model predicts (the first token has no context)


def add_references(settings: HMMSettings, combined: xr.Dataset, datasets: dict[tuple[str, float], xr.Dataset]) -> xr.Dataset:
    """Reference variables per (condition, a) and the conditions' roles, kinds and eigenvalues as coords.

    ``datasets`` maps (condition id, a) to that evaluation dataset; a (condition, a) that no grid trains
    has no dataset, and NaN references.
    """
    ids = [str(c) for c in combined["condition"].values]
    fidelities = [float(a) for a in combined["a"].values]

    def stack(extract: Callable[[xr.Dataset], object]) -> np.ndarray:
        values = {(c, a): np.asarray(extract(data), dtype=np.float64) for (c, a), data in datasets.items()}
        blank = np.full_like(next(iter(values.values())), np.nan)
        return np.array([[_lookup(values, c, a, blank) for a in fidelities] for c in ids])

    def factor_optimum(data: xr.Dataset) -> xr.DataArray:
        return data["factor_optimal_loss"]

    references = {
        "optimal_loss": (("condition", "a"), stack(lambda d: d.attrs["optimal_loss_mean"])),
        "unigram_loss": (("condition", "a"), stack(lambda d: d.attrs["unigram_loss"])),
        "context_gain": (("condition", "a"), stack(lambda d: d.attrs["context_gain"])),
        "factor_context_gain": (
            ("condition", "a", "factor"),
            stack(lambda d: (factor_optimum(d)[:, 0] - factor_optimum(d)[:, PREDICTED].mean("position")).values),
        ),
        "factor_older_info": (
            ("condition", "a", "factor"),
            stack(lambda d: (factor_optimum(d)[:, 1] - factor_optimum(d)[:, -1]).values),
        ),
        "filter_decay": (("condition", "a", "step"), stack(lambda d: d["filter_decay"].values)),
        "factor_filter_decay": (("condition", "a", "factor", "step"), stack(lambda d: d["factor_filter_decay"].values)),
    }
    conditions = [settings.condition(c) for c in ids]
    states = np.array([_states(datasets, c) for c in ids])  # (condition, factor): hidden states per factor
    references["factored_dimension"] = (("condition",), (states - 1).sum(axis=1).astype(float))
    references["product_dimension"] = (("condition",), (states.prod(axis=1) - 1).astype(float))
    combined = combined.assign(references).assign_coords(
        step=np.arange(1, len(combined["distance"])),
        role=("condition", np.array([c.role for c in conditions], dtype=object)),
        kind1=("condition", np.array([c.factors[0].kind for c in conditions], dtype=object)),
        kind2=("condition", np.array([c.factors[1].kind for c in conditions], dtype=object)),
        lambda1=("condition", [c.factors[0].lam for c in conditions]),
        lambda2=("condition", [c.factors[1].lam for c in conditions]),
    )
    combined["factor_older_info"].attrs["description"] = (
        "H(X_t|X_t-1) - H(X_t|X_<t) at the last position: what tokens older than the current one can gain (nats)"
    )
    return combined


def _lookup(values: dict[tuple[str, float], np.ndarray], condition: str, a: float, blank: np.ndarray) -> np.ndarray:
    for (key_condition, key_a), value in values.items():
        if key_condition == condition and same_value(key_a, a):
            return value
    return blank


def _states(datasets: dict[tuple[str, float], xr.Dataset], condition: str) -> list[int]:
    """Each factor's number of hidden states, from any evaluation set of ``condition``."""
    data = next(data for (key, _), data in datasets.items() if key == condition)
    return [data[f"beliefs_{k}"].shape[-1] for k in (1, 2)]
