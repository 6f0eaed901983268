"""Readoff training sequences drawn in torch on the training device, for every member at once.

Same law as :func:`headshare.tasks.readoff.sampler.sample_readoff` (the reference, which also draws the
evaluation set): uniform noise tokens, two distinct uniform slots before the readoff token, two independent
uniform signal tokens. Member e's draws come from the counter-based stream ``keys[e]`` alone.
"""

from __future__ import annotations

import torch
from torch import Tensor

from headshare.counter_rng import uniforms
from headshare.tasks.readoff.sampler import _CLASS_OF_ORDERED_PAIR, N_NOISE, N_SIGNAL, READOFF_TOKEN


def _below(draws: Tensor, count: int) -> Tensor:
    """Uniform integers in [0, count) from draws in [0, 1) (clamped: float32 may round u * count up)."""
    return (draws * count).long().clamp_(max=count - 1)


def sample_readoff_on(keys: Tensor, n_seq: int, length: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Tokens (E, n_seq, length) and pair labels (E, n_seq) for the members with stream ``keys``."""
    if length < 3:
        raise ValueError(f"length must be >= 3 (two signal slots plus the readoff), got {length}")
    draws = uniforms(keys.to(device), (length + 4, n_seq))
    n_slots = length - 1
    tokens = N_SIGNAL + _below(draws[:, :length].transpose(1, 2), N_NOISE)
    tokens[:, :, -1] = READOFF_TOKEN
    first = _below(draws[:, length], n_slots)
    second = _below(draws[:, length + 1], n_slots - 1)
    second = second + (second >= first).long()  # skip past the first slot: a uniform distinct pair
    signal = _below(draws[:, length + 2 :].transpose(1, 2), N_SIGNAL)  # (E, n_seq, 2)
    tokens.scatter_(2, torch.stack([first, second], dim=2), signal)
    classes = torch.as_tensor(_CLASS_OF_ORDERED_PAIR, device=device)
    return tokens, classes[signal[..., 0], signal[..., 1]]
