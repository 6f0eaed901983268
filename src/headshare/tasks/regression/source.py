"""Training batches of in-context linear regression, drawn fresh every step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from headshare.tasks.regression.device_sampler import sample_regression_on
from headshare.tasks.regression.sampler import sample_regression
from headshare.training import Batch, loss_positions, member_keys, per_member


@dataclass(frozen=True)
class RegressionSource:
    """In-context linear regression: d+1-dim tokens, the target is y at the final query token. Drawn on
    ``device`` in torch when given (see HMMSource), else on the host."""

    seeds: Sequence[int]
    batch_size: int
    d: int
    n_context: int
    device: torch.device | None = None

    def __call__(self, step: int) -> Batch:
        if self.device is not None:
            keys = member_keys(self.seeds, step)
            inputs, targets = sample_regression_on(keys, self.batch_size, self.d, self.n_context, self.device)
            return Batch(inputs, targets, loss_positions(self.n_context + 1, last_only=True))
        samples = per_member(
            lambda _, rng: sample_regression(self.batch_size, self.d, self.n_context, rng),
            self.seeds,
            step,
        )
        inputs = torch.from_numpy(np.stack([s.tokens for s in samples]).astype(np.float32))
        targets = torch.from_numpy(np.stack([s.targets for s in samples]).astype(np.float32))
        return Batch(inputs, targets, loss_positions(self.n_context + 1, last_only=True))
