"""Product-HMM training tokens drawn in torch on the training device, for every member at once.

The numpy sampler (:mod:`headshare.tasks.hmm.sampler`) stays the reference and draws the evaluation sets;
this one feeds training where moving tokens from the host would stall the device. Member e's draws come
from the counter-based stream ``keys[e]`` (:mod:`headshare.counter_rng`), so its sequences depend on its
own key alone, and one key gives the same tokens on every device. Each position is one gather of the
cumulative (token, next state) distribution of every sequence's current state and one comparison with a
uniform draw, over all members and sequences together.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from headshare.counter_rng import uniforms
from headshare.tasks.hmm.processes import HMM


class _FactorTables:
    """Cumulative distributions of one factor of every member, as device tensors.

    ``start[e, i]``: stationary cdf over states; ``step[e, i, k*m + j]``: cdf over the joint outcome (token
    k, next state j) from state i.
    """

    def __init__(self, hmms: Sequence[HMM], device: torch.device) -> None:
        shapes = {(hmm.n_tokens, hmm.n_states) for hmm in hmms}
        if len(shapes) != 1:
            raise ValueError(f"factors sampled together need one shape; got {sorted(shapes)}")
        (self.n_tokens, self.n_states), = shapes
        start = np.cumsum([hmm.stationary() for hmm in hmms], axis=1)
        by_state = np.stack([hmm.transitions.transpose(1, 0, 2) for hmm in hmms])  # (E, i, k, j)
        step = np.cumsum(by_state.reshape(len(hmms), self.n_states, -1), axis=2)
        # Normalised so the last outcome sits at exactly 1: a draw in [0, 1) never falls beyond it.
        self.start = torch.from_numpy(start / start[:, -1:]).to(device, torch.float32)
        self.step = torch.from_numpy(step / step[:, :, -1:]).to(device, torch.float32)

    def sample(self, draws: Tensor) -> Tensor:
        """Tokens (E, n_seq, length) from ``draws`` (E, length + 1, n_seq): the first row picks the start."""
        length = draws.shape[1] - 1
        state = (draws[:, 0, :, None] >= self.start[:, None, :]).sum(-1).clamp_(max=self.n_states - 1)
        tokens = torch.empty(draws.shape[0], draws.shape[2], length, dtype=torch.int64, device=draws.device)
        for t in range(length):
            rows = torch.gather(self.step, 1, state[..., None].expand(-1, -1, self.step.shape[2]))
            outcome = (draws[:, t + 1, :, None] >= rows).sum(-1)
            tokens[:, :, t] = torch.div(outcome, self.n_states, rounding_mode="floor")
            state = outcome % self.n_states
        return tokens


class DeviceProductSampler:
    """Joint tokens k1 * n2 + k2 of member e's product ``pairs[e]``, drawn on ``device``."""

    def __init__(self, pairs: Sequence[tuple[HMM, HMM]], device: torch.device) -> None:
        firsts, seconds = zip(*pairs)
        self.factors = (_FactorTables(firsts, device), _FactorTables(seconds, device))
        self.device = device

    def __call__(self, keys: Tensor, n_seq: int, length: int) -> Tensor:
        """(E, n_seq, length) int64 tokens; member e's are a function of ``keys[e]`` alone."""
        draws = uniforms(keys.to(self.device), (2, length + 1, n_seq))
        first, second = (factor.sample(draws[:, index]) for index, factor in enumerate(self.factors))
        return first * self.factors[1].n_tokens + second
