"""The regression convergence evaluator: held-out loss relative to one step of gradient descent."""

from __future__ import annotations

import numpy as np
import torch

from headshare.evaluation import on_device
from headshare.extraction import chunks
from headshare.model import EnsembleTransformer
from headshare.seeding import derived_rng
from headshare.tasks.regression.sampler import gd_prediction, optimal_gd_step, sample_regression
from headshare.tasks.regression.settings import RegressionSettings


class RegressionEvaluator:
    """One held-out batch of tasks shared by every model. The metric is the model's mean squared error over
    one-step GD's (eta line-searched on this batch); its standard error follows from the delta method."""

    def __init__(self, settings: RegressionSettings, n_tasks: int) -> None:
        rng = derived_rng(settings.seed, "regression-convergence")
        sample = sample_regression(n_tasks, settings.dim, settings.n_context, rng)
        self.tokens, self.targets = sample.tokens, sample.targets
        self.gd_error = 0.5 * (gd_prediction(sample.tokens, optimal_gd_step(sample)) - sample.targets) ** 2

    def __call__(self, model: EnsembleTransformer) -> dict[str, np.ndarray]:
        tokens = on_device(model, self.tokens.astype(np.float32))
        predictions = torch.cat(
            [model.last_logits(tokens[part].expand(model.n_members, -1, -1, -1))[:, :, 0].double().cpu() for part in chunks(len(tokens))],
            dim=1,
        ).numpy()
        error = 0.5 * (predictions - self.targets) ** 2  # [E, N]
        gd_mean = self.gd_error.mean()
        ratio = error.mean(-1) / gd_mean
        # delta method for a ratio of means: Var(X/Y) ~ Var(X - r Y) / (n E[Y]^2)
        linearised = error - ratio[:, None] * self.gd_error
        ratio_se = linearised.std(-1, ddof=1) / (np.sqrt(error.shape[-1]) * gd_mean)
        return {"metric": ratio, "metric_se": ratio_se}
