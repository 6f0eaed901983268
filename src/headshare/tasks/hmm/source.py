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
    never waits for host tokens. The two are equal in distribution, not draw for draw. Members whose factors
    differ in shape (members of several cohorts training together) are drawn in one call per shape.
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
        by_shape: dict[tuple, list[int]] = {}
        for index, pair in enumerate(self.processes):
            by_shape.setdefault(tuple((p.n_tokens, p.n_states) for p in pair), []).append(index)
        object.__setattr__(self, "_subsets", list(by_shape.values()))
        if self.device is not None:
            samplers = [
                DeviceProductSampler([self.processes[i] for i in subset], self.device) for subset in self._subsets
            ]
            object.__setattr__(self, "_on_device", samplers)

    def tokens(self, step: int) -> torch.Tensor:
        """(E, batch_size, n_ctx + 1) tokens of one step."""
        if len(self._subsets) == 1:
            return self._draw(0, self.seeds, self.processes, step)
        tokens = torch.empty(len(self.seeds), self.batch_size, self.n_ctx + 1, dtype=torch.int64, device=self.device)
        for which, subset in enumerate(self._subsets):
            drawn = self._draw(which, [self.seeds[i] for i in subset], [self.processes[i] for i in subset], step)
            tokens[torch.tensor(subset, device=tokens.device)] = drawn
        return tokens

    def _draw(self, which: int, seeds: Sequence[int], processes: Sequence[tuple[Any, Any]], step: int) -> torch.Tensor:
        """Tokens of the members of one factor shape (subset ``which``)."""
        if self.device is not None:
            return self._on_device[which](member_keys(seeds, step), self.batch_size, self.n_ctx + 1)
        rngs = [member_rng(seed, step) for seed in seeds]
        return torch.from_numpy(sample_product_tokens(processes, self.batch_size, self.n_ctx + 1, rngs))

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
