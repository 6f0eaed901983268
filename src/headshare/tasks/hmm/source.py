"""Training batches of product-HMM next-token prediction, drawn fresh every step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from headshare.tasks.hmm.device_sampler import DeviceProductSampler
from headshare.tasks.hmm.sampler import sample_product_tokens
from headshare.training import Batch, loss_positions, member_keys, member_rng


@dataclass(frozen=True)
class HMMSource:
    """Next-token prediction on sequences of the product of two HMMs, one pair per member.

    Draws n_ctx + 1 tokens, feeds x[:-1] and predicts x[1:], so every attention source is a
    real token and the optimum at (0-based) position t is H(X_{t+2} | X_1..X_{t+1}).

    Without a ``device`` the numpy sampler draws on the host (member_rng streams; on a CPU it is as fast and
    runs on the prefetch thread); with one, the torch sampler draws there (member_key streams), so a GPU
    never waits for host tokens. The two are equal in distribution, not draw for draw.
    """

    processes: Sequence[tuple[Any, Any]]
    seeds: Sequence[int]
    batch_size: int
    n_ctx: int
    last_only: bool | Sequence[bool] = False  # one flag for all members, or one per member
    device: torch.device | None = None

    def __post_init__(self) -> None:
        if len(self.processes) != len(self.seeds):
            raise ValueError(
                f"need one process pair per seed: {len(self.processes)} pairs, {len(self.seeds)} seeds"
            )
        if self.device is not None:
            object.__setattr__(self, "_on_device", DeviceProductSampler(self.processes, self.device))

    def tokens(self, step: int) -> torch.Tensor:
        """(E, batch_size, n_ctx + 1) tokens of one step."""
        if self.device is not None:
            return self._on_device(member_keys(self.seeds, step), self.batch_size, self.n_ctx + 1)
        rngs = [member_rng(seed, step) for seed in self.seeds]
        return torch.from_numpy(sample_product_tokens(self.processes, self.batch_size, self.n_ctx + 1, rngs))

    def __call__(self, step: int) -> Batch:
        tokens = self.tokens(step)
        return Batch(
            inputs=tokens[:, :, :-1].contiguous(),
            targets=tokens[:, :, 1:].contiguous(),
            loss_positions=(
                loss_positions(self.n_ctx, self.last_only)
                if isinstance(self.last_only, bool)
                else torch.stack([loss_positions(self.n_ctx, flag) for flag in self.last_only])
            ),
        )
