"""Scoring quantities of the in-context regression task: how close the model comes to one step of GD."""

from __future__ import annotations

import numpy as np
import xarray as xr

from headshare.scoring.quantity import Quantity, per_seed, scalar
from headshare.scoring.rule import Rule
from headshare.store import ArtifactError

_UNLEARNED = "Inconclusive when the model's loss is not below that of always predicting zero."


def _learned(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> tuple[np.ndarray, str]:
    if "zero_loss" not in store.attrs:
        raise ArtifactError("the regression store lacks the zero_loss attribute, needed to tell if a model learned")
    zero = float(store.attrs["zero_loss"])
    return per_seed(point["loss"]) < zero, f"loss not below the zero predictor's {zero:.4g}"


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
)
