"""Training batches of the readoff task, drawn fresh every step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from headshare.tasks.readoff.device_sampler import sample_readoff_on
from headshare.tasks.readoff.sampler import sample_readoff
from headshare.training import Batch, loss_positions, member_keys, per_member


@dataclass(frozen=True)
class ReadoffSource:
    """Readoff classification: the pair label is the target at the last (readoff) position. Drawn on
    ``device`` in torch when given (see HMMSource), else on the host."""

    seeds: Sequence[int]
    batch_size: int
    n_ctx: int
    device: torch.device | None = None

    def __call__(self, step: int) -> Batch:
        if self.device is not None:
            tokens, labels = sample_readoff_on(member_keys(self.seeds, step), self.batch_size, self.n_ctx, self.device)
            targets = torch.zeros_like(tokens)
            targets[:, :, -1] = labels
            return Batch(tokens, targets, loss_positions(self.n_ctx, last_only=True))
        samples = per_member(
            lambda _, rng: sample_readoff(self.batch_size, self.n_ctx, rng), self.seeds, step
        )
        tokens = torch.from_numpy(np.stack([s.tokens for s in samples]))
        targets = torch.zeros_like(tokens)
        targets[:, :, -1] = torch.from_numpy(np.stack([s.labels for s in samples]))
        return Batch(tokens, targets, loss_positions(self.n_ctx, last_only=True))
