"""Readoff task: which signal tokens each head attends to, and whether heads disagree.

The claim under test is that two heads with d_head = 1 solve the task by ranking the signal
tokens in opposite orders. A head's preference for signal token s is the mean attention
weight the readoff position puts on a position holding s, averaged over every occurrence
of s (a double contributes both of its positions).
"""

import numpy as np

from headshare.tasks.readoff.sampler import N_SIGNAL


def signal_preference(attn: np.ndarray, tokens: np.ndarray, n_signal: int = N_SIGNAL) -> np.ndarray:
    """Mean readoff attention per head on each signal token, shape (H, n_signal).

    ``attn`` is (N, H, T): the readoff position's attention over key positions. ``tokens``
    is (N, T); signal tokens are ids 0..n_signal-1. A token that never occurs gets NaN.
    """
    attn = np.asarray(attn, dtype=np.float64)
    tokens = np.asarray(tokens)
    if attn.ndim != 3 or tokens.shape != (attn.shape[0], attn.shape[2]):
        raise ValueError(
            f"attn must be (N, H, T) and tokens (N, T), got {attn.shape} and {tokens.shape}"
        )
    if n_signal < 1:
        raise ValueError(f"n_signal must be >= 1, got {n_signal}")
    holds = tokens[:, :, None] == np.arange(n_signal)  # (N, T, S)
    total = np.einsum("nht,nts->hs", attn, holds)
    occurrences = holds.sum(axis=(0, 1))
    return np.where(occurrences > 0, total / np.maximum(occurrences, 1), np.nan)


def preference_order(preference: np.ndarray) -> np.ndarray:
    """Signal tokens from most to least attended, per head: (H, S) -> (H, S) token ids.

    Ties keep the lower token id first.
    """
    preference = np.asarray(preference, dtype=np.float64)
    if preference.ndim != 2 or not np.all(np.isfinite(preference)):
        raise ValueError(f"preference must be a finite (H, S) array, got shape {preference.shape}")
    return np.argsort(-preference, axis=1, kind="stable")


def kendall_tau(order_a: np.ndarray, order_b: np.ndarray) -> float:
    """Kendall's tau between two rankings of the same tokens; -1 means fully inverted.

    Each order lists token ids from first to last, as a row of ``preference_order``.
    """
    rank_a, rank_b = _ranks(order_a), _ranks(order_b)
    if rank_a.shape != rank_b.shape:
        raise ValueError(f"orders must rank the same tokens, got {order_a} and {order_b}")
    agree = np.sign(rank_a[:, None] - rank_a[None, :]) * np.sign(rank_b[:, None] - rank_b[None, :])
    n = rank_a.shape[0]
    return float(agree.sum() / (n * (n - 1)))


def orders_inverted(order_a: np.ndarray, order_b: np.ndarray) -> bool:
    """True when one order is exactly the other reversed."""
    return kendall_tau(order_a, order_b) == -1.0


def _ranks(order: np.ndarray) -> np.ndarray:
    """Position of each token id in ``order``, which must be a permutation of 0..S-1."""
    order = np.asarray(order)
    size = order.shape[0] if order.ndim == 1 else 0
    if size < 2 or not np.array_equal(np.sort(order), np.arange(size)):
        raise ValueError(f"an order must be a permutation of 0..S-1 with S >= 2, got {order}")
    ranks = np.empty(size, dtype=np.int64)
    ranks[order] = np.arange(size)
    return ranks


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose arg-max logit is the label; logits (N, C), labels (N,)."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(
            f"logits must be (N, C) and labels (N,), got {logits.shape}, {labels.shape}"
        )
    if labels.size == 0:
        raise ValueError("accuracy needs at least one row")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(
            f"labels must lie in 0..{logits.shape[1] - 1}, got {labels.min()}..{labels.max()}"
        )
    return float(np.mean(np.argmax(logits, axis=1) == labels))
