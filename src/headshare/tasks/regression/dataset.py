"""Evaluation tasks of in-context linear regression (SCIENCE.md §6) with the GD and least-squares references.

eta* is line-searched on this very set, so the one-step-GD loss is the best any one-step learner reaches. The K-step
references (one K per number of layers trained) are line-searched on a separate, larger sample and scored on this
set: GD++'s best steps grow fast with K, and a search on 20,000 tasks over-fits the rare tasks whose spectrum lies
past the transformed edge (at d = N = 10, K = 3: 0.039 in-sample but 17 +- 12 on a million fresh tasks; searched on
200,000 tasks, 0.047 +- 0.006 fresh; see headshare.tasks.regression.multistep).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from headshare.provenance import provenance_attrs
from headshare.seeding import derived_rng
from headshare.tasks.regression.generalisation import generalisation_references
from headshare.tasks.regression.multistep import line_search, multistep_prediction
from headshare.tasks.regression.sampler import (
    gd_prediction,
    least_squares_prediction,
    mean_squared_loss,
    optimal_gd_step,
    RegressionSample,
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
            **depth_references(settings, sample).data_vars,
            "tokens": (("task", "position", "feature"), sample.tokens),
            "targets": (("task",), sample.targets),
            "weights": (("task", "dim"), sample.weights),
            "gd_prediction": (("task",), gd),
            "least_squares_prediction": (("task",), least_squares),
        },
        coords={
            "position": np.arange(n_context + 1), "feature": np.arange(d + 1), "dim": np.arange(d), **references.coords,
            "depth": list(settings.depths), "step": np.arange(1, max(settings.depths) + 1),
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


REFERENCE_SEARCH_TASKS = 200_000


def depth_references(settings: RegressionSettings, sample: RegressionSample) -> xr.Dataset:
    """K-step GD and GD++ for each K the grid trains: their parameters (NaN beyond step K), line-searched on
    ``REFERENCE_SEARCH_TASKS`` tasks of their own, and their losses on ``sample``."""
    search = sample_regression(
        REFERENCE_SEARCH_TASKS, settings.dim, settings.n_context, derived_rng(settings.seed, "regression-line-search")
    )
    depths = settings.depths
    steps = max(depths)
    parameters = {name: np.full((len(depths), steps), np.nan) for name in ("multistep_eta", "gdpp_eta", "gdpp_gamma")}
    losses: dict[str, list[float]] = {"multistep_gd_loss": [], "gdpp_loss": []}
    for row, depth in enumerate(depths):
        for plus, loss_name, eta_name in ((False, "multistep_gd_loss", "multistep_eta"), (True, "gdpp_loss", "gdpp_eta")):
            etas, gammas = line_search(search.tokens, search.targets, depth, plus=plus)
            parameters[eta_name][row, :depth] = etas
            if plus:
                parameters["gdpp_gamma"][row, :depth] = gammas
            prediction = multistep_prediction(sample.tokens, etas, gammas if plus else None)
            losses[loss_name].append(mean_squared_loss(prediction, sample.targets))
    return xr.Dataset(
        {
            **{name: (("depth", "step"), values) for name, values in parameters.items()},
            **{name: (("depth",), np.array(values)) for name, values in losses.items()},
        },
        coords={"depth": list(depths), "step": np.arange(1, steps + 1)},
    )
