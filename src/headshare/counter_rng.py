"""Counter-based random numbers in torch: each draw is a pure function of (stream key, counter).

Training samples on the device it trains on, for every member of an ensemble at once. A stateful generator
per member would cost one kernel launch per member and step; one generator for the whole ensemble would tie
a member's data to its position in the ensemble. Hashing (key, counter) instead gives every member its own
stream, keyed by its seed and the step alone, drawn for all members in a few vectorised integer operations,
and the same bits on every device.

The hash is a 32-bit integer finaliser (``lowbias32``: xorshift-multiply rounds), computed in int64 with
products split so that no intermediate exceeds 2^49: integer overflow is never relied on. Keys chain the
hash over the labels of a stream; a draw hashes the counter, mixes in the key and hashes again.
"""

from __future__ import annotations

from typing import overload

import torch
from torch import Tensor

MASK32 = 0xFFFFFFFF
_ROUND1, _ROUND2 = 0x7FEB352D, 0x846CA68B
_GOLDEN = 0x9E3779B9  # spreads consecutive counters before the first hash
_UNIFORM_BITS = 24  # float32 holds 24 significant bits: draws are k / 2^24, k < 2^24, so never 1.0


@overload
def _mul32(x: int, constant: int) -> int: ...
@overload
def _mul32(x: Tensor, constant: int) -> Tensor: ...
def _mul32(x, constant):
    """x * constant mod 2^32 for x < 2^32, without any product above 2^49."""
    low = x * (constant & 0xFFFF)
    high = ((x * (constant >> 16)) & 0xFFFF) << 16
    return (low + high) & MASK32


@overload
def hash32(x: int) -> int: ...
@overload
def hash32(x: Tensor) -> Tensor: ...
def hash32(x):
    """A bijective mix of the low 32 bits of ``x`` (Python ints or int64 tensors, same results)."""
    x = x & MASK32
    x = x ^ (x >> 16)
    x = _mul32(x, _ROUND1)
    x = x ^ (x >> 15)
    x = _mul32(x, _ROUND2)
    return x ^ (x >> 16)


def stream_key(*labels: int) -> int:
    """The key of the stream named by non-negative integer ``labels`` (each folded in 32 bits at a time)."""
    key = 0
    for label in labels:
        if label < 0:
            raise ValueError(f"stream labels must be >= 0, got {label}")
        while True:
            key = hash32(key ^ hash32(label & MASK32))
            label >>= 32
            if not label:
                break
    return key


def uniforms(keys: Tensor, shape: tuple[int, ...]) -> Tensor:
    """float32 draws in [0, 1) of shape (len(keys), *shape): row e is stream ``keys[e]``'s first draws, so it
    does not depend on the other keys; the same keys give the same draws on every device."""
    count = 1
    for size in shape:
        count *= size
    counters = torch.arange(count, device=keys.device, dtype=torch.int64)
    mixed = hash32(_mul32(counters, _GOLDEN)[None, :] ^ keys[:, None])
    bits = hash32(mixed + keys[:, None]) >> (32 - _UNIFORM_BITS)
    return (bits.to(torch.float32) * 2.0**-_UNIFORM_BITS).reshape(len(keys), *shape)
