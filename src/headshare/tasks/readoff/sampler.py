"""Readoff task: name the unordered pair of signal tokens hidden among noise.

A sequence of ``length`` tokens holds uniformly drawn noise tokens, two signal tokens
(drawn independently, so a double such as {2, 2} is possible) at two distinct random
positions before the end, and ends with the readoff token. The target at the readoff
position is the unordered pair, one of ``N_CLASSES`` classes. Because the two draws are
independent and ordered, a double has probability 1/16 and a distinct pair 2/16.
"""

from dataclasses import dataclass

import numpy as np

N_SIGNAL = 4
N_NOISE = 7
READOFF_TOKEN = N_SIGNAL + N_NOISE  # 11
VOCAB_SIZE = READOFF_TOKEN + 1  # 12

# Class order: the 4 doubles first, then the 6 distinct pairs in lexicographic order.
CLASS_PAIRS: tuple[tuple[int, int], ...] = tuple((a, a) for a in range(N_SIGNAL)) + tuple(
    (a, b) for a in range(N_SIGNAL) for b in range(a + 1, N_SIGNAL)
)
N_CLASSES = len(CLASS_PAIRS)  # 10


def _class_of_ordered_pair() -> np.ndarray:
    """(N_SIGNAL, N_SIGNAL) lookup table so that classifying a batch is one gather."""
    table = np.empty((N_SIGNAL, N_SIGNAL), dtype=np.int64)
    for index, (a, b) in enumerate(CLASS_PAIRS):
        table[a, b] = table[b, a] = index
    return table


_CLASS_OF_ORDERED_PAIR = _class_of_ordered_pair()


@dataclass(frozen=True)
class ReadoffSample:
    """A batch of readoff sequences with their ground truth.

    ``signal_positions`` is sorted along its last axis (earlier position first) and
    ``signal_tokens[:, k]`` is the token at ``signal_positions[:, k]``.
    """

    tokens: np.ndarray  # (n_seq, length) int64
    labels: np.ndarray  # (n_seq,) int64, index into CLASS_PAIRS
    signal_positions: np.ndarray  # (n_seq, 2) int64
    signal_tokens: np.ndarray  # (n_seq, 2) int64


def pair_class(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Class index of the unordered signal pair {a, b}; elementwise, symmetric in a and b."""
    a, b = np.asarray(a), np.asarray(b)
    for name, value in (("a", a), ("b", b)):
        if value.size and (value.min() < 0 or value.max() >= N_SIGNAL):
            raise ValueError(
                f"signal token {name} must lie in 0..{N_SIGNAL - 1}, got values in "
                f"{value.min()}..{value.max()}"
            )
    return _CLASS_OF_ORDERED_PAIR[a, b]


def sample_readoff(n_seq: int, length: int, rng: np.random.Generator) -> ReadoffSample:
    """Draw ``n_seq`` independent readoff sequences of ``length`` tokens."""
    if n_seq < 1:
        raise ValueError(f"n_seq must be >= 1, got {n_seq}")
    if length < 3:
        raise ValueError(f"length must be >= 3 (two signal slots plus the readoff), got {length}")
    n_slots = length - 1
    tokens = rng.integers(N_SIGNAL, N_SIGNAL + N_NOISE, size=(n_seq, length), dtype=np.int64)
    tokens[:, -1] = READOFF_TOKEN
    # A uniform ordered pair of distinct slots: draw the second from the n_slots - 1 slots
    # left over and skip past the first.
    first = rng.integers(0, n_slots, size=n_seq, dtype=np.int64)
    second = rng.integers(0, n_slots - 1, size=n_seq, dtype=np.int64)
    second += second >= first
    positions = np.sort(np.stack([first, second], axis=1), axis=1)
    signal_tokens = rng.integers(0, N_SIGNAL, size=(n_seq, 2), dtype=np.int64)
    np.put_along_axis(tokens, positions, signal_tokens, axis=1)
    return ReadoffSample(
        tokens=tokens,
        labels=pair_class(signal_tokens[:, 0], signal_tokens[:, 1]),
        signal_positions=positions,
        signal_tokens=signal_tokens,
    )
