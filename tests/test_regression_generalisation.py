"""Generalisation of in-context regression in N and input scale, against closed forms and a model built by
hand to implement one step of gradient descent."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers.configs import deep_merge, default_config

from headshare import tasks
from headshare.config import validate_config
from headshare.model import EnsembleTransformer, ModelConfig
from headshare.tasks.regression.generalisation import (
    generalisation_evidence,
    generalisation_references,
    generalisation_sample,
)
from headshare.tasks.regression.sampler import expected_gd_loss, gd_prediction, mean_squared_loss

D, N_TRAINED, ETA = 10, 10, 6.0


def settings_with(tasks_per_point: int):
    config = validate_config(deep_merge(default_config(), {"regression": {"generalisation": {"tasks": tasks_per_point}}}))
    return tasks.configured(config, "regression")[1]


def test_gd_and_least_squares_references_match_their_closed_forms():
    settings = settings_with(20_000)
    references = generalisation_references(settings, ETA)
    for n in settings.generalisation_contexts:
        for scale in settings.generalisation_scales:
            # x -> scale x multiplies y by scale and the eta = 1 GD prediction by scale^3: E[y^2] by scale^2,
            # E[g y] by scale^4, E[g^2] by scale^6; substituting eta scale^2 reuses the unit-scale closed form.
            exact = scale**2 * expected_gd_loss(D, n, ETA * scale**2)
            measured = float(references["generalisation_gd_loss"].sel(n_eval=n, scale=scale))
            assert measured == pytest.approx(exact, rel=0.05), (n, scale)
            # least squares: exact once the context spans R^d, else the prior on the unseen d - N directions
            unseen = 0.5 * max(D - n, 0) * scale**2 / 12
            least_squares = float(references["generalisation_least_squares_loss"].sel(n_eval=n, scale=scale))
            assert least_squares == pytest.approx(unseen, rel=0.05, abs=1e-9), (n, scale)


def gd_by_hand(scale: float) -> EnsembleTransformer:
    """One-layer linear self-attention over the context, as the task builds it, that reads
    y_hat = s / (sqrt(d_head) N) sum_j y_j x_j . x_q over the N context tokens: queries and keys read x,
    values read y."""
    width = D + 1
    cfg = ModelConfig(n_ctx=N_TRAINED + 1, d_model=width, n_heads=1, d_head=width, d_out=1, input_dim=width,
                      attention="linear", positional=False, mask="context")
    x_only, y_only = torch.diag(torch.tensor([1.0] * D + [0.0])), torch.zeros(width, width)
    y_only[D, D] = 1.0
    state = {
        "W_E": torch.eye(width), "b_E": torch.zeros(width),
        "W_U": torch.eye(width)[:, D:] * scale, "b_U": torch.zeros(1),
        "blocks.0.attn.W_QKV": torch.cat([x_only, x_only, y_only], dim=1), "blocks.0.attn.b_QKV": torch.zeros(3 * width),
        "blocks.0.attn.W_O": torch.eye(width)[None], "blocks.0.attn.b_O": torch.zeros(width),
    }
    return EnsembleTransformer.from_members(cfg, [state])


def test_a_model_that_implements_gd_is_measured_as_gd_at_every_context_length_and_scale():
    settings = settings_with(500)
    # The attention averages over the N context tokens whatever N is, so the model is GD with step size ETA at
    # every context length and scale.
    (evidence,) = generalisation_evidence(settings, gd_by_hand(ETA * math.sqrt(D + 1)), ETA, torch.device("cpu"))
    for n in settings.generalisation_contexts:
        for scale in settings.generalisation_scales:
            sample = generalisation_sample(settings, n, scale)
            expected = mean_squared_loss(gd_prediction(sample.tokens, ETA), sample.targets)
            at = dict(n_eval=n, scale=scale)
            assert float(evidence["generalisation_loss"].sel(at)) == pytest.approx(expected, rel=1e-4)
            assert float(evidence["generalisation_gradient_cosine"].sel(at)) == pytest.approx(1.0, abs=1e-5)
            rms = float(np.sqrt(np.mean(gd_prediction(sample.tokens, ETA) ** 2)))
            assert float(evidence["generalisation_prediction_rmse"].sel(at)) < 1e-5 * max(rms, 1.0)
