"""Seeded, vectorised samplers for hidden Markov processes and their products, with exact filter beliefs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from headshare.processes import HMM


@dataclass(frozen=True)
class HMMSample:
    """Sequences of one process with their ground truth.

    The arrays are views of position-major buffers (the sampler fills one position at a time), so they
    need not be C-contiguous.
    """

    tokens: np.ndarray  # (n_seq, length) int64
    states: np.ndarray  # (n_seq, length) int64: hidden state right after emitting tokens[:, t]
    beliefs: np.ndarray  # (n_seq, length, n_states): filter belief after seeing tokens[:, :t+1]


@dataclass(frozen=True)
class ProductSample:
    """Sequences of two independent processes read as one stream (token k1*n2 + k2, state s1*m2 + s2)."""

    tokens: np.ndarray  # (n_seq, length) int64, joint token
    states: np.ndarray  # (n_seq, length) int64, joint state
    beliefs: np.ndarray  # (n_seq, length, m1*m2): outer product of the factor beliefs, flattened
    factors: tuple[HMMSample, HMMSample]


def _check_sizes(n_seq: int, length: int) -> None:
    if n_seq < 1 or length < 1:
        raise ValueError(f"n_seq={n_seq} and length={length} must both be >= 1")


def _sample_path(hmm: HMM, n_seq: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Tokens and hidden states, both (length, n_seq): position-major so each step streams over sequences."""
    _check_sizes(n_seq, length)
    n_states = hmm.n_states
    # Column i: cumulative distribution of the joint outcome (token k, next state j) from state i, row k*m + j.
    # Outcomes down the first axis keep the per-step gather and comparison contiguous over sequences.
    cumulative = np.cumsum(hmm.transitions.transpose(0, 2, 1).reshape(-1, n_states), axis=0)
    cumulative /= cumulative[-1]  # trailing impossible outcomes sit at exactly 1, never drawn
    n_outcomes = hmm.n_tokens * n_states
    token_of, state_of = np.divmod(np.arange(n_outcomes), n_states)
    count_dtype = np.uint8 if n_outcomes <= np.iinfo(np.uint8).max else np.int64  # narrow sums are faster
    state = rng.choice(n_states, size=n_seq, p=hmm.stationary())
    uniforms = rng.random((length, n_seq))
    tokens = np.empty((length, n_seq), dtype=np.int64)
    states = np.empty((length, n_seq), dtype=np.int64)
    for t in range(length):
        outcome = (uniforms[t] >= np.take(cumulative, state, axis=1)).sum(axis=0, dtype=count_dtype)
        tokens[t] = np.take(token_of, outcome)
        states[t] = state = np.take(state_of, outcome)
    return tokens, states


def sample_hmm(hmm: HMM, n_seq: int, length: int, rng: np.random.Generator) -> HMMSample:
    """Draw ``n_seq`` sequences from stationarity; loops over positions, never over sequences."""
    tokens, states = _sample_path(hmm, n_seq, length, rng)
    belief = np.broadcast_to(hmm.stationary(), (n_seq, hmm.n_states))
    beliefs = np.empty((length, hmm.n_states, n_seq))
    for t in range(length):
        belief = hmm.update(belief, tokens[t])
        beliefs[t] = belief.T
    return HMMSample(tokens=tokens.T, states=states.T, beliefs=beliefs.transpose(2, 0, 1))


def sample_product_tokens(p1: HMM, p2: HMM, n_seq: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """Joint tokens only, (n_seq, length): the same draws as :func:`sample_product` without the beliefs,
    for training, which needs nothing else."""
    first, _ = _sample_path(p1, n_seq, length, rng)
    second, _ = _sample_path(p2, n_seq, length, rng)
    return (first * p2.n_tokens + second).T


def sample_product(p1: HMM, p2: HMM, n_seq: int, length: int, rng: np.random.Generator) -> ProductSample:
    """Sample the two factors independently (first p1, then p2, from the same ``rng``) and join them."""
    first = sample_hmm(p1, n_seq, length, rng)
    second = sample_hmm(p2, n_seq, length, rng)
    # Position-major (length, m1, m2, n_seq) product: the multiply streams over the contiguous sequence axis.
    by_position1, by_position2 = first.beliefs.transpose(1, 2, 0), second.beliefs.transpose(1, 2, 0)
    joint_beliefs = by_position1[:, :, None, :] * by_position2[:, None, :, :]
    return ProductSample(
        tokens=first.tokens * p2.n_tokens + second.tokens,
        states=first.states * p2.n_states + second.states,
        beliefs=joint_beliefs.reshape(length, -1, n_seq).transpose(2, 0, 1),
        factors=(first, second),
    )
