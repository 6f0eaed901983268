"""Evidence from trained regression models: loss against one-step GD and least squares, and how well the
model's input gradient at the query aligns with GD's, on the training distribution and beyond it
(:mod:`headshare.tasks.regression.generalisation`)."""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from headshare.analysis.regression import gd_query_gradient, input_gradient_cosine, prediction_l2
from headshare.extraction import SAMPLE_SEQUENCES
from headshare.model import EnsembleTransformer
from headshare.tasks.regression.generalisation import generalisation_evidence, query_predictions
from headshare.tasks.regression.settings import RegressionSettings


def extract_regression(
    settings: RegressionSettings, model: EnsembleTransformer, data: xr.Dataset, device: torch.device
) -> list[xr.Dataset]:
    tokens = data["tokens"].values
    targets = data["targets"].values
    reference_gradient = gd_query_gradient(tokens, data.attrs["gd_eta"])
    y_model, grad_model = query_predictions(model, tokens, device)
    generalisation = generalisation_evidence(settings, model, data.attrs["gd_eta"], device)
    gd = data["gd_prediction"].values
    kept = min(SAMPLE_SEQUENCES, len(targets))
    results = []
    for member in range(model.n_members):
        loss = 0.5 * float(np.mean((y_model[member] - targets) ** 2))
        results.append(
            xr.Dataset(
                {
                    "loss": ((), loss),
                    "gd_loss_ratio": ((), loss / data.attrs["gd_loss"]),
                    "gradient_cosine": ((), input_gradient_cosine(grad_model[member], reference_gradient)),
                    "prediction_l2": ((), prediction_l2(y_model[member], gd)),
                    "prediction": (("task",), y_model[member, :kept]),
                },
                coords={"task": np.arange(kept)},
            ).merge(generalisation[member])
        )
    return results
