"""Evidence from trained regression models: loss against one-step GD, K-step GD, GD++ and least squares, how
well the model's input gradient at the query aligns with each reference's, on the training distribution and
beyond it (:mod:`headshare.tasks.regression.generalisation`), and whether a context is a weight update
(:mod:`headshare.tasks.regression.currying`)."""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from headshare.analysis.regression import gd_query_gradient, input_gradient_cosine, prediction_l2
from headshare.extraction import SAMPLE_SEQUENCES
from headshare.model import EnsembleTransformer
from headshare.seeding import derived_rng
from headshare.tasks.regression.currying import curry, gd_predictor_cosine
from headshare.tasks.regression.generalisation import generalisation_evidence, query_predictions
from headshare.tasks.regression.multistep import multistep_weights
from headshare.tasks.regression.sampler import sample_regression
from headshare.tasks.regression.settings import RegressionSettings


def _reference_weights(data: xr.Dataset, depth: int) -> dict[str, np.ndarray]:
    """The linear predictors (tasks, d) of K-step GD and GD++ at K = ``depth``, from the line-searched
    parameters the evaluation set holds."""
    at = data.sel(depth=depth).isel(step=slice(0, depth))
    tokens = data["tokens"].values
    return {
        "multistep": multistep_weights(tokens, at["multistep_eta"].values),
        "gdpp": multistep_weights(tokens, at["gdpp_eta"].values, at["gdpp_gamma"].values),
    }


def currying_evidence(
    settings: RegressionSettings, model: EnsembleTransformer, eta: float, device: torch.device
) -> list[xr.Dataset]:
    """Per member, per held-out context: is the context a weight update (the fit's residual), how large,
    along one fine-tuning step or not, and which linear predictor it implies against one-step GD's. The
    contexts and queries come from the task seed alone, so every model faces the same ones."""
    rng = derived_rng(settings.seed, "regression-currying")
    contexts = sample_regression(settings.curry_contexts, settings.dim, settings.n_context, rng).tokens[:, :-1]
    fit, held_out = (rng.uniform(-0.5, 0.5, size=(settings.curry_queries, settings.dim)) for _ in range(2))
    fitted = curry(model, contexts, fit, held_out, steps=settings.curry_steps, device=device)
    values = {
        "curry_residual": fitted.residual,
        "curry_distance": fitted.distance,
        "curry_finetune_cosine": fitted.finetune_cosine,
        "curry_gd_cosine": gd_predictor_cosine(fitted.implied_predictor, contexts, eta),
    }
    coords = {"curry_context": np.arange(settings.curry_contexts)}
    return [
        xr.Dataset({name: (("curry_context",), array[member]) for name, array in values.items()}, coords=coords)
        for member in range(model.n_members)
    ]


def extract_regression(
    settings: RegressionSettings, model: EnsembleTransformer, data: xr.Dataset, device: torch.device
) -> list[xr.Dataset]:
    tokens = data["tokens"].values
    targets = data["targets"].values
    attrs = data.attrs
    depth = model.cfg.n_layers
    reference_gradient = gd_query_gradient(tokens, attrs["gd_eta"])
    deep = _reference_weights(data, depth)
    deep_losses = {"multistep": float(data["multistep_gd_loss"].sel(depth=depth)), "gdpp": float(data["gdpp_loss"].sel(depth=depth))}
    y_model, grad_model = query_predictions(model, tokens, device)
    generalisation = generalisation_evidence(settings, model, attrs["gd_eta"], device)
    currying = currying_evidence(settings, model, attrs["gd_eta"], device)
    gd = data["gd_prediction"].values
    kept = min(SAMPLE_SEQUENCES, len(targets))
    results = []
    for member in range(model.n_members):
        loss = 0.5 * float(np.mean((y_model[member] - targets) ** 2))
        per_reference = {
            f"{name}_loss_ratio": ((), loss / deep_losses[name]) for name in deep
        } | {
            f"{name}_gradient_cosine": ((), input_gradient_cosine(grad_model[member], weights))
            for name, weights in deep.items()
        }
        results.append(
            xr.Dataset(
                {
                    "loss": ((), loss),
                    "gd_loss_ratio": ((), loss / attrs["gd_loss"]),
                    "gradient_cosine": ((), input_gradient_cosine(grad_model[member], reference_gradient)),
                    "prediction_l2": ((), prediction_l2(y_model[member], gd)),
                    "prediction": (("task",), y_model[member, :kept]),
                    "least_squares_gap_closed": (
                        (), (attrs["gd_loss"] - loss) / (attrs["gd_loss"] - attrs["least_squares_loss"])
                    ),
                    **per_reference,
                },
                coords={"task": np.arange(kept)},
            ).merge(generalisation[member]).merge(currying[member])
        )
    return results
