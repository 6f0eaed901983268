"""Evaluation tasks of in-context linear regression (SCIENCE.md §6) with the GD and least-squares references.

eta* is line-searched on this very set, so the one-step-GD loss is the best any one-step learner reaches.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from headshare.provenance import provenance_attrs
from headshare.seeding import derived_rng
from headshare.tasks.regression.generalisation import generalisation_references
from headshare.tasks.regression.sampler import (
    gd_prediction,
    least_squares_prediction,
    mean_squared_loss,
    optimal_gd_step,
    sample_regression,
    zero_loss,
)
from headshare.tasks.regression.settings import RegressionSettings


def regression_dataset(settings: RegressionSettings) -> xr.Dataset:
    d, n_context = settings.dim, settings.n_context
    sample = sample_regression(settings.eval_tasks, d, n_context, derived_rng(settings.seed, "regression-eval"))
    eta = optimal_gd_step(sample)
    gd = gd_prediction(sample.tokens, eta)
    least_squares = least_squares_prediction(sample.tokens)
    references = generalisation_references(settings, eta)
    return xr.Dataset(
        {
            **references.data_vars,
            "tokens": (("task", "position", "feature"), sample.tokens),
            "targets": (("task",), sample.targets),
            "weights": (("task", "dim"), sample.weights),
            "gd_prediction": (("task",), gd),
            "least_squares_prediction": (("task",), least_squares),
        },
        coords={
            "position": np.arange(n_context + 1), "feature": np.arange(d + 1), "dim": np.arange(d), **references.coords,
        },
        attrs={
            "n_context": n_context,
            "gd_eta": float(eta),
            "gd_loss": mean_squared_loss(gd, sample.targets),
            "least_squares_loss": mean_squared_loss(least_squares, sample.targets),
            "zero_loss": zero_loss(d),
            **provenance_attrs(settings.config, task="regression", seed=settings.seed),
        },
    )
