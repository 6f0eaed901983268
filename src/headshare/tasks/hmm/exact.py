"""Exact references for a process (all in nats): optimal loss per position, the Bayes filter, its memory."""

from __future__ import annotations

from collections import deque

import numpy as np

from headshare.tasks.hmm.sampler import sample_hmm
from headshare.tasks.hmm.processes import HMM, ProcessError

# Exact enumeration holds one forward vector per sequence; beyond this many sequences memory runs out.
MAX_ENUMERATED_SEQUENCES = 3**15


def _check_enumerable(hmm: HMM, length: int) -> None:
    if length < 1:
        raise ValueError(f"length={length} must be >= 1")
    if hmm.n_tokens**length > MAX_ENUMERATED_SEQUENCES:
        raise ValueError(
            f"{hmm.name}: {hmm.n_tokens}^{length} sequences exceed the enumeration limit "
            f"{MAX_ENUMERATED_SEQUENCES}; use a shorter length, or per-factor enumeration for products"
        )


def _forward_vectors(hmm: HMM, length: int):
    """Yield, for t = 1..length, unnormalised forward vectors ``(n^t, m)`` of every length-t sequence.

    Rows are in lexicographic order of the token sequence (first token slowest); a row sums to the
    sequence's probability.
    """
    _check_enumerable(hmm, length)
    alpha = hmm.stationary()[None, :]
    for _ in range(length):
        alpha = np.einsum("si,kij->skj", alpha, hmm.transitions).reshape(-1, hmm.n_states)
        yield alpha


def _entropy(probabilities: np.ndarray) -> float:
    """Shannon entropy in nats, with 0 log 0 = 0."""
    positive = probabilities[probabilities > 0]
    return float(-(positive * np.log(positive)).sum())


def conditional_entropies(hmm: HMM, length: int) -> np.ndarray:
    """``H(X_t | X_<t)`` for t = 1..length: differences of exactly enumerated block entropies."""
    block = [_entropy(alpha.sum(axis=1)) for alpha in _forward_vectors(hmm, length)]
    return np.diff(np.concatenate([[0.0], block]))


def product_conditional_entropies(p1: HMM, p2: HMM, length: int) -> np.ndarray:
    """``H(X_t | X_<t)`` of ``product(p1, p2)``.

    The factors are independent, so every block entropy of the product is the sum of the factors' block
    entropies, and so are their differences; each factor enumerates only its own n_i^t sequences.
    """
    return conditional_entropies(p1, length) + conditional_entropies(p2, length)


def filter_predictions(hmm: HMM, tokens: np.ndarray) -> np.ndarray:
    """Bayes filter's distribution ``(B, T, n)`` for token t given tokens before t (row 0: stationary)."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 2:
        raise ValueError(f"tokens must have shape (batch, length), got {tokens.shape}")
    beliefs = np.broadcast_to(hmm.stationary(), (tokens.shape[0], hmm.n_states))
    predictions = np.empty(tokens.shape + (hmm.n_tokens,))
    for t in range(tokens.shape[1]):
        predictions[:, t] = hmm.predictive(beliefs)
        beliefs = hmm.update(beliefs, tokens[:, t])
    return predictions


def filter_log_loss(hmm: HMM, tokens: np.ndarray) -> np.ndarray:
    """``-log p(x_t | x_<t)`` ``(B, T)`` of the actual tokens under the Bayes filter."""
    tokens = np.asarray(tokens)
    predictions = filter_predictions(hmm, tokens)
    return -np.log(np.take_along_axis(predictions, tokens[..., None], axis=-1)[..., 0])


def _exact_sensitivity(hmm: HMM, context: int, max_distance: int) -> np.ndarray:
    """Every sequence weighted by its probability; a replaced sequence is another row of the enumeration."""
    alpha = deque(_forward_vectors(hmm, context), maxlen=1).pop()
    weights = alpha.sum(axis=1)
    if np.any(weights <= 0):
        raise ProcessError(
            f"{hmm.name}: some length-{context} sequences have probability 0, so the effect of replacing a "
            f"token is undefined; use an interior parameter (0 < a < 1, lambda < 1)"
        )
    final = hmm.predictive(alpha / weights[:, None])
    n = hmm.n_tokens
    sensitivity = np.empty(max_distance)
    for distance in range(max_distance):
        position = context - 1 - distance
        # Axis 1 is the token at `position` (rows are lexicographic, first token slowest).
        predictions = final.reshape(n**position, n, -1, n)
        probability = weights.reshape(n**position, n, -1)
        moved = 0.0
        for replacement in range(n):
            replaced = predictions[:, replacement : replacement + 1]
            moved += (probability * 0.5 * np.abs(predictions - replaced).sum(axis=-1)).sum()
        sensitivity[distance] = moved / n
    return sensitivity


def _sampled_sensitivity(hmm: HMM, tokens: np.ndarray, max_distance: int) -> np.ndarray:
    """Monte-Carlo mean over sampled sequences; every replacement token is tried on each."""
    n_seq, context = tokens.shape
    prefix_beliefs = [np.broadcast_to(hmm.stationary(), (n_seq, hmm.n_states))]
    for t in range(context):
        prefix_beliefs.append(hmm.update(prefix_beliefs[-1], tokens[:, t]))
    final = hmm.predictive(prefix_beliefs[-1])[:, None, :]
    every_token = np.arange(hmm.n_tokens)[None, :]
    sensitivity = np.empty(max_distance)
    for distance in range(max_distance):
        position = context - 1 - distance
        # (n_seq, n_tokens, m): one branch per replacement token, then the unchanged suffix.
        beliefs = hmm.update(prefix_beliefs[position][:, None, :], every_token)
        for t in range(position + 1, context):
            beliefs = hmm.update(beliefs, tokens[:, t, None])
        sensitivity[distance] = 0.5 * np.abs(hmm.predictive(beliefs) - final).sum(axis=-1).mean()
    return sensitivity


def filter_sensitivity(
    hmm: HMM,
    context: int,
    max_distance: int | None = None,
    *,
    n_samples: int | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """``S(n)``, n = 0..max_distance-1: how much the filter's next-token prediction after ``context`` tokens
    moves (mean total variation) when the token at distance n from the end (n = 0: the last one) is replaced
    by a uniformly drawn token (the draw may return the original token, which moves nothing).

    The ratio ``S(n+1)/S(n)`` is the filter's own per-step forgetting rate, to be compared with lambda and
    with trained attention. Exact (every sequence weighted by its probability, every replacement token
    averaged) when ``n_samples`` is None; otherwise Monte-Carlo over ``n_samples`` sequences drawn with ``rng``
    (needed for products, whose n^context sequences are too many), still averaging every replacement token.
    """
    if context < 1:
        raise ValueError(f"context={context} must be >= 1")
    max_distance = context if max_distance is None else max_distance
    if not 1 <= max_distance <= context:
        raise ValueError(f"max_distance={max_distance} must lie in [1, context={context}]")
    if n_samples is None:
        return _exact_sensitivity(hmm, context, max_distance)
    if n_samples < 1:
        raise ValueError(f"n_samples={n_samples} must be >= 1")
    if rng is None:
        raise ValueError("filter_sensitivity: Monte-Carlo (n_samples given) needs an explicit rng, got None")
    return _sampled_sensitivity(hmm, sample_hmm(hmm, n_samples, context, rng).tokens, max_distance)


def effective_decay(sensitivity: np.ndarray) -> np.ndarray:
    """Per-step ratios ``S(n+1)/S(n)``: the filter's effective decay rate at each distance."""
    sensitivity = np.asarray(sensitivity, dtype=np.float64)
    return sensitivity[1:] / sensitivity[:-1]
