"""Training batches of the readoff task, drawn fresh every step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from headshare.tasks.readoff.sampler import sample_readoff
from headshare.training import Batch, loss_positions, per_member


@dataclass(frozen=True)
class ReadoffSource:
    """Readoff classification: the pair label is the target at the last (readoff) position."""

    seeds: Sequence[int]
    batch_size: int
    n_ctx: int

    def __call__(self, step: int) -> Batch:
        samples = per_member(
            lambda _, rng: sample_readoff(self.batch_size, self.n_ctx, rng), self.seeds, step
        )
        tokens = torch.from_numpy(np.stack([s.tokens for s in samples]))
        targets = torch.zeros_like(tokens)
        targets[:, :, -1] = torch.from_numpy(np.stack([s.labels for s in samples]))
        return Batch(tokens, targets, loss_positions(self.n_ctx, last_only=True))
