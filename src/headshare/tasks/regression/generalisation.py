"""Does a trained model keep implementing one step of GD away from its training distribution?

von Oswald et al. evaluate models trained at N = 10 on N = 5-50 context examples and on inputs outside the
training range (SCIENCE.md §9). Every model is evaluated here on the same tasks per (context length N,
input scale alpha), x ~ U(-alpha/2, alpha/2)^d, drawn from the task seed alone so that all comparisons are
paired; the references are one step of GD at the step size line-searched on the training distribution
(``gd_eta`` of the evaluation set), and least squares (the Bayes-optimal predictor here, exact once N >= d).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import xarray as xr

from headshare.analysis.regression import gd_query_gradient, input_gradient_cosine, prediction_l2
from headshare.extraction import chunks
from headshare.model import EnsembleTransformer
from headshare.seeding import derived_rng
from headshare.tasks.regression.sampler import (
    RegressionSample,
    gd_prediction,
    least_squares_prediction,
    mean_squared_loss,
    sample_regression,
)
from headshare.tasks.regression.settings import RegressionSettings

DIMS = ("n_eval", "scale")


def generalisation_sample(settings: RegressionSettings, n_context: int, scale: float) -> RegressionSample:
    """The evaluation tasks at one (N, alpha): the same for every model and every run of this config."""
    rng = derived_rng(settings.seed, "regression-generalisation", n_context, repr(float(scale)))
    return sample_regression(settings.generalisation_tasks, settings.dim, n_context, rng, scale)


def _grid(settings: RegressionSettings) -> list[tuple[int, float]]:
    return [(n, scale) for n in settings.generalisation_contexts for scale in settings.generalisation_scales]


def _as_grid(settings: RegressionSettings, values: np.ndarray) -> np.ndarray:
    """Values listed in :func:`_grid` order as an (n_eval, scale) array (leading dims kept in front)."""
    shape = (len(settings.generalisation_contexts), len(settings.generalisation_scales))
    return np.asarray(values, dtype=np.float64).reshape(*np.shape(values)[:-1], *shape)


def _coords(settings: RegressionSettings) -> dict[str, list]:
    return {"n_eval": list(settings.generalisation_contexts), "scale": list(settings.generalisation_scales)}


def generalisation_references(settings: RegressionSettings, eta: float) -> xr.Dataset:
    """One-step GD (step size ``eta``) and least-squares losses at every (N, alpha)."""
    gd, least_squares = [], []
    for n, scale in _grid(settings):
        sample = generalisation_sample(settings, n, scale)
        gd.append(mean_squared_loss(gd_prediction(sample.tokens, eta), sample.targets))
        least_squares.append(mean_squared_loss(least_squares_prediction(sample.tokens), sample.targets))
    return xr.Dataset(
        {
            "generalisation_gd_loss": (DIMS, _as_grid(settings, gd)),
            "generalisation_least_squares_loss": (DIMS, _as_grid(settings, least_squares)),
        },
        coords=_coords(settings),
    )


def query_predictions(model: EnsembleTransformer, tokens: np.ndarray, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Every member's query predictions (E, tasks) and query input gradients d y_hat / d x_q (E, tasks, d)."""
    predictions, gradients = [], []
    for part in chunks(tokens.shape[0]):
        batch = torch.as_tensor(tokens[part], dtype=torch.float32, device=device)
        batch = batch.expand(model.n_members, -1, -1, -1).clone().requires_grad_(True)
        y_hat = model.last_logits(batch)[:, :, 0]
        (gradient,) = torch.autograd.grad(y_hat.sum(), batch)
        predictions.append(y_hat.detach().double().cpu())
        gradients.append(gradient[:, :, -1, :-1].double().cpu())
    return torch.cat(predictions, dim=1).numpy(), torch.cat(gradients, dim=1).numpy()


def generalisation_evidence(
    settings: RegressionSettings, model: EnsembleTransformer, eta: float, device: torch.device
) -> list[xr.Dataset]:
    """Per member: loss, cosine with GD's query gradient and RMS distance from GD's predictions, per (N, alpha).

    The model has no positional embeddings, so its trained weights run unchanged on any context length."""
    longest = max(settings.generalisation_contexts) + 1
    cfg = dataclasses.replace(model.cfg, n_ctx=max(model.cfg.n_ctx, longest))
    states = [model.member_state_dict(member) for member in range(model.n_members)]
    wide = EnsembleTransformer.from_members(cfg, states).to(device).eval()
    loss, cosine, distance = [], [], []
    for n, scale in _grid(settings):
        sample = generalisation_sample(settings, n, scale)
        y_model, grad_model = query_predictions(wide, sample.tokens, device)
        gd = gd_prediction(sample.tokens, eta)
        reference_gradient = gd_query_gradient(sample.tokens, eta)
        loss.append([mean_squared_loss(y, sample.targets) for y in y_model])
        cosine.append([input_gradient_cosine(g, reference_gradient) for g in grad_model])
        distance.append([prediction_l2(y, gd) for y in y_model])
    per_member = [_as_grid(settings, np.asarray(values).T) for values in (loss, cosine, distance)]
    return [
        xr.Dataset(
            {
                "generalisation_loss": (DIMS, per_member[0][member]),
                "generalisation_gradient_cosine": (DIMS, per_member[1][member]),
                "generalisation_prediction_rmse": (DIMS, per_member[2][member]),
            },
            coords=_coords(settings),
        )
        for member in range(model.n_members)
    ]
