"""Shared pieces of the task evaluators that track convergence during training.

Each task's evaluator holds one fixed held-out batch, drawn once from a seed independent of training and of
the final evaluation sets, and returns per member the convergence metric with its standard error plus any
curves worth keeping (see headshare.training.Evaluator).
"""

from __future__ import annotations

import numpy as np
import torch

from headshare.extraction import chunks
from headshare.model import EnsembleTransformer


def on_device(model: EnsembleTransformer, array: np.ndarray) -> torch.Tensor:
    """``array`` as a tensor on the model's device."""
    return torch.as_tensor(array, device=next(model.parameters()).device)


def mean_and_se(per_sequence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the last axis and its standard error (sample SD / sqrt(n))."""
    n = per_sequence.shape[-1]
    return per_sequence.mean(axis=-1), per_sequence.std(axis=-1, ddof=1) / np.sqrt(n)


def last_query_attention(model: EnsembleTransformer, inputs: torch.Tensor) -> np.ndarray:
    """[E, L, H, D]: mean attention from the last query to the key at distance d (0 = itself), per layer and
    head, over the sequences of ``inputs`` [E, N, T]."""
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    total = 0.0
    for part in chunks(inputs.shape[1]):
        _, cache = model.run_with_cache(inputs[:, part], names)
        last = torch.stack([cache[name][:, :, :, -1] for name in names], dim=1)  # [E, L, B, H, T_k]
        total = total + last.double().sum(dim=2)
    return (total / inputs.shape[1]).flip(-1).cpu().numpy()
