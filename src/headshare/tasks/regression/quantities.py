"""Scoring quantities of the in-context regression task: how close the model comes to one step of GD."""

from __future__ import annotations

import numpy as np
import xarray as xr

from headshare.scoring.quantity import Measured, Quantity, judged, outcomes, per_seed, scalar, spread
from headshare.scoring.rule import Rule
from headshare.store import ArtifactError

_UNLEARNED = (
    "Inconclusive when the model never left the zero predictor's plateau: its loss is not closer to one-step "
    "GD's than to always predicting zero."
)


def _learned(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> tuple[np.ndarray, str]:
    """A model learned when its loss is below the midpoint of GD's and the zero predictor's: a model on the
    zero predictor's plateau neither matches GD nor shows that its architecture cannot."""
    missing = [key for key in ("zero_loss", "gd_loss") if key not in store.attrs]
    if missing:
        raise ArtifactError(f"the regression store lacks the {', '.join(missing)} attribute, needed to tell if a model learned")
    zero, gd = float(store.attrs["zero_loss"]), float(store.attrs["gd_loss"])
    midpoint = 0.5 * (zero + gd)
    return per_seed(point["loss"]) < midpoint, (
        f"loss not below {midpoint:.4g}, midway between one-step GD's {gd:.4g} and the zero predictor's {zero:.4g}"
    )


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
