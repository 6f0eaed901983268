"""In-context regression tasks drawn in torch on the training device, for every member at once.

Same law as :func:`headshare.tasks.regression.sampler.sample_regression` (the reference, which also draws
the evaluation set): w ~ N(0, I_d) by Box-Muller from two uniform draws, inputs x ~ U(-0.5, 0.5)^d, context
tokens (x_j, w . x_j) and the query (x_q, 0). Member e's draws come from the counter-based stream
``keys[e]`` alone.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from headshare.counter_rng import uniforms


def sample_regression_on(
    keys: Tensor, n_tasks: int, d: int, n_context: int, device: torch.device
) -> tuple[Tensor, Tensor]:
    """float32 tokens (E, n_tasks, n_context + 1, d + 1) and query targets (E, n_tasks)."""
    draws = uniforms(keys.to(device), (n_tasks, 2 * d + (n_context + 1) * d))
    radius = torch.sqrt(-2.0 * torch.log1p(-draws[..., :d]))  # 1 - u lies in (0, 1]: the log is finite
    weights = radius * torch.cos(2.0 * math.pi * draws[..., d : 2 * d])
    x = (draws[..., 2 * d :] - 0.5).reshape(len(keys), n_tasks, n_context + 1, d)
    y = torch.einsum("etjd,etd->etj", x, weights)
    targets = y[..., -1].clone()
    y[..., -1] = 0.0
    return torch.cat([x, y[..., None]], dim=3), targets
