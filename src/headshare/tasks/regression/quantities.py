"""Scoring quantities of the in-context regression task: how close the model comes to one step of GD."""

from __future__ import annotations

import numpy as np
import xarray as xr

from headshare.scoring.quantity import Measured, Quantity, judged, outcomes, per_seed, scalar, spread
from headshare.scoring.rule import Rule
from headshare.store import ArtifactError

_UNLEARNED = "Inconclusive when the model's loss is not below that of always predicting zero."


def _learned(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> tuple[np.ndarray, str]:
    if "zero_loss" not in store.attrs:
        raise ArtifactError("the regression store lacks the zero_loss attribute, needed to tell if a model learned")
    zero = float(store.attrs["zero_loss"])
    return per_seed(point["loss"]) < zero, f"loss not below the zero predictor's {zero:.4g}"


def _worst_over_grid(reduce: str, what: str):
    """A measurement judging each seed by its worst (N, alpha) point of the generalisation grid: the largest
    |loss / GD loss - 1| (``reduce`` "ratio") or the smallest gradient cosine ("cosine")."""

    def measure(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> Measured:
        if reduce == "ratio":
            ratio = point["generalisation_loss"] / point["generalisation_gd_loss"]
            worst = per_seed(abs(ratio - 1).max(("n_eval", "scale"), skipna=False))
        else:
            worst = per_seed(point["generalisation_gradient_cosine"].min(("n_eval", "scale"), skipna=False))
        learned, unlearned = _learned(point, rule, store)
        return Measured(
            outcomes=outcomes(np.array([rule.holds(v) for v in worst]), finite=np.isfinite(worst), learned=learned),
            observed=spread(worst),
            explain={**judged(what, rule), "unlearned": unlearned, "missing": f"{what} is NaN"},
        )

    return measure


QUANTITIES = (
    Quantity(
        name="regression_loss_ratio",
        task="regression",
        variables=("loss", "gd_loss_ratio"),
        measure=scalar("gd_loss_ratio", _learned),
        verdict="the model's held-out loss over the loss of one step of gradient descent (1: GD's loss). " + _UNLEARNED,
    ),
    Quantity(
        name="gradient_cosine",
        task="regression",
        variables=("loss", "gradient_cosine"),
        measure=scalar("gradient_cosine", _learned),
        verdict="the cosine between the model's and one-step GD's d y_hat / d x_query. " + _UNLEARNED,
    ),
    Quantity(
        name="generalisation_loss_ratio",
        task="regression",
        variables=("loss", "generalisation_loss", "generalisation_gd_loss"),
        measure=_worst_over_grid("ratio", "the largest |loss / GD loss - 1| over (N, scale)"),
        verdict="""
            the largest |loss / loss of one-step GD - 1| over every evaluated context length N and input scale
            (config `regression.generalisation`), GD taking the step size line-searched on the training
            distribution. """ + _UNLEARNED,
    ),
    Quantity(
        name="generalisation_cosine",
        task="regression",
        variables=("loss", "generalisation_gradient_cosine"),
        measure=_worst_over_grid("cosine", "the smallest gradient cosine over (N, scale)"),
        verdict="""
            the smallest cosine between the model's and one-step GD's d y_hat / d x_query over every evaluated
            context length N and input scale. """ + _UNLEARNED,
    ),
)
