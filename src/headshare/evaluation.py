"""Shared pieces of the task evaluators that track convergence during training.

Each task's evaluator holds one fixed held-out batch, drawn once from a seed independent of training and of
the final evaluation sets, and returns per member the convergence metric with its standard error plus any
curves worth keeping (see headshare.training.Evaluator).
"""

from __future__ import annotations

import numpy as np
import torch

from headshare.model import EnsembleTransformer


def on_device(model: EnsembleTransformer, array: np.ndarray) -> torch.Tensor:
    """``array`` as a tensor on the model's device."""
    return torch.as_tensor(array, device=next(model.parameters()).device)


def mean_and_se(per_sequence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the last axis and its standard error (sample SD / sqrt(n))."""
    n = per_sequence.shape[-1]
    return per_sequence.mean(axis=-1), per_sequence.std(axis=-1, ddof=1) / np.sqrt(n)


def last_query_attention(patterns: list[torch.Tensor]) -> torch.Tensor:
    """[E, L, H, D]: summed attention from the last query to the key at distance d (0 = itself), per layer and
    head, over the sequences of one batch, from each layer's cached pattern [E, B, H, T_q, T_k]; divide by
    the sequences for the mean."""
    last = torch.stack([pattern[:, :, :, -1] for pattern in patterns], dim=1)  # [E, L, B, H, T_k]
    return last.double().sum(dim=2).flip(-1)
