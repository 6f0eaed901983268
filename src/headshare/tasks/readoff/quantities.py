"""Scoring quantities of the readoff task: whether the model solves it, and how its heads split the signal."""

from __future__ import annotations

import numpy as np
import xarray as xr

from headshare.scoring.quantity import Measured, Quantity, judged, outcomes, per_seed, scalar, spread
from headshare.scoring.rule import Rule


def _learned(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> tuple[np.ndarray, str]:
    return per_seed(point["accuracy"]) >= rule.min_accuracy, f"readoff accuracy below {rule.min_accuracy:g}"


def _preference_inversion(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> Measured:
    """Kendall's tau of the most inverted layer of each model (a 1-layer model's only layer)."""
    taus = per_seed(point["preference_tau"].isel(layer=slice(0, int(point["n_layers"]))), "layer")
    tau = taus.min(axis=1)  # NaN when any of the model's layers has none
    learned, unlearned = _learned(point, rule, store)
    return Measured(
        outcomes=outcomes(np.array([rule.holds(t) for t in tau]), finite=np.isfinite(tau), learned=learned),
        observed=spread(tau),
        explain={**judged("preference_tau", rule), "unlearned": unlearned, "missing": "preference_tau is NaN"},
    )


def _signal_uniformity(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> Measured:
    """Max/min ratio of a one-head model's readoff attention over the signal tokens, in its most uniform
    layer (a 1-layer model's only layer)."""
    preference = per_seed(point["signal_preference"].isel(layer=slice(0, int(point["n_layers"])), head=0), "layer", "signal")
    ratio = (preference.max(axis=2) / preference.min(axis=2)).min(axis=1)  # NaN when a layer has none
    learned, unlearned = _learned(point, rule, store)
    return Measured(
        outcomes=outcomes(np.array([rule.holds(r) for r in ratio]), finite=np.isfinite(ratio), learned=learned),
        observed=spread(ratio),
        explain={**judged("signal attention max/min", rule), "unlearned": unlearned, "missing": "signal_preference is NaN"},
    )


QUANTITIES = (
    Quantity(
        name="readoff_accuracy",
        task="readoff",
        variables=("accuracy",),
        measure=scalar("accuracy"),
        verdict="the model's held-out readoff accuracy.",
    ),
    Quantity(
        name="preference_inversion",
        task="readoff",
        variables=("accuracy", "preference_tau"),
        measure=_preference_inversion,
        heads=2,
        verdict="""
            Kendall's tau between the two heads' preference orders over the signal tokens (-1: exactly
            inverted), in the model's most inverted layer. Inconclusive when readoff accuracy is below
            `min_accuracy`: attention is read only in models that solve the task.
        """,
    ),
    Quantity(
        name="signal_uniformity",
        task="readoff",
        variables=("accuracy", "signal_preference"),
        measure=_signal_uniformity,
        heads=1,
        verdict="""
            the largest over the smallest of a one-head model's mean readoff attention on the four signal
            tokens (1: uniform), in the model's most uniform layer. Inconclusive when readoff accuracy is
            below `min_accuracy`.
        """,
    ),
)
