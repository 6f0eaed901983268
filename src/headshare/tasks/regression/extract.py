"""Evidence from trained regression models: loss against one-step GD and least squares, and how well the
model's input gradient at the query aligns with GD's."""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from headshare.analysis.regression import gd_query_gradient, input_gradient_cosine, prediction_l2
from headshare.extraction import SAMPLE_SEQUENCES, chunks
from headshare.model import EnsembleTransformer


def extract_regression(model: EnsembleTransformer, data: xr.Dataset, device: torch.device) -> list[xr.Dataset]:
    tokens = data["tokens"].values
    targets = data["targets"].values
    reference_gradient = gd_query_gradient(tokens, data.attrs["gd_eta"])
    predictions, gradients = [], []
    for part in chunks(tokens.shape[0]):
        batch = torch.as_tensor(tokens[part], dtype=torch.float32, device=device)
        batch = batch.expand(model.n_members, -1, -1, -1).clone().requires_grad_(True)
        y_hat = model(batch)[:, :, -1, 0]
        (gradient,) = torch.autograd.grad(y_hat.sum(), batch)
        predictions.append(y_hat.detach().double().cpu())
        gradients.append(gradient[:, :, -1, :-1].double().cpu())  # d y_hat / d x_query
    y_model = torch.cat(predictions, dim=1).numpy()
    grad_model = torch.cat(gradients, dim=1).numpy()
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
            )
        )
    return results
