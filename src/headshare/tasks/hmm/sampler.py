"""Seeded, vectorised samplers for hidden Markov processes and their products, with exact filter beliefs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from headshare.tasks.hmm.processes import HMM

# When _sample_paths compares each draw with every state's row (see there): few states, many sequences.
ALL_STATES_MAX, ALL_STATES_MIN_SEQUENCES = 4, 4096


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


def _sample_paths(
    hmms: Sequence[HMM], n_seq: int, length: int, rngs: Sequence[np.random.Generator]
) -> tuple[np.ndarray, np.ndarray]:
    """Tokens and hidden states of several processes of one shape, each (len(hmms), length, n_seq).

    Process e draws its randomness from ``rngs[e]`` alone, so its sequences do not depend on which other
    processes are sampled beside it; the per-position work is one gather over all processes' sequences.
    """
    _check_sizes(n_seq, length)
    n_states, n_tokens = hmms[0].n_states, hmms[0].n_tokens
    if any((hmm.n_states, hmm.n_tokens) != (n_states, n_tokens) for hmm in hmms):
        raise ValueError(f"processes sampled together need one shape; got {[(h.n_tokens, h.n_states) for h in hmms]}")
    n_outcomes = n_tokens * n_states
    # Row e*m + i: cumulative distribution of the joint outcome (token k, next state j) from state i of
    # process e, outcome k*m + j along the last axis.
    by_state = np.stack([hmm.transitions.transpose(1, 0, 2) for hmm in hmms])  # (E, i, k, j)
    cumulative = np.cumsum(by_state.reshape(len(hmms) * n_states, n_outcomes), axis=1)
    cumulative /= cumulative[:, -1:]  # trailing impossible outcomes sit at exactly 1, never drawn
    # A sequence's outcome counts the cumulative entries of its state's row at or below its uniform. With
    # few states and many sequences, counting against every state's row and keeping the sequence's own is
    # cheaper than gathering each sequence's row (measured per position at 20,000 sequences: 0.65x the time
    # at 2 and 3 states, equal at 6, 1.5x at 9; at 3 states, 0.8x from 4,096 sequences, 1.2-1.3x up to 1,024).
    every_state = n_states <= ALL_STATES_MAX and n_seq >= ALL_STATES_MIN_SEQUENCES
    if every_state:
        cumulative = cumulative.reshape(len(hmms), n_states, n_outcomes, 1)
        column = np.tile(np.arange(n_seq), len(hmms))
    else:
        cumulative = np.ascontiguousarray(cumulative.T)  # outcomes first: the comparison streams over sequences
    token_of, state_of = np.divmod(np.arange(n_outcomes), n_states)
    count_dtype = np.uint8 if n_outcomes <= np.iinfo(np.uint8).max else np.int64  # narrow sums are faster
    starts, uniforms = [], []
    for hmm, rng in zip(hmms, rngs):
        starts.append(rng.choice(n_states, size=n_seq, p=hmm.stationary()))
        uniforms.append(rng.random((length, n_seq)))
    offset = np.repeat(np.arange(len(hmms)) * n_states, n_seq)
    state = np.concatenate(starts)
    uniform = np.stack(uniforms, axis=1).reshape(length, -1)
    tokens = np.empty((length, len(hmms) * n_seq), dtype=np.int64)
    states = np.empty_like(tokens)
    for t in range(length):
        if every_state:
            counts = (uniform[t].reshape(len(hmms), 1, 1, n_seq) >= cumulative).sum(axis=2, dtype=count_dtype)
            outcome = np.take(counts, (offset + state) * n_seq + column)
        else:
            outcome = (uniform[t] >= np.take(cumulative, offset + state, axis=1)).sum(axis=0, dtype=count_dtype)
        tokens[t] = np.take(token_of, outcome)
        states[t] = state = np.take(state_of, outcome)
    as_processes = lambda values: values.reshape(length, len(hmms), n_seq).transpose(1, 0, 2)  # noqa: E731
    return as_processes(tokens), as_processes(states)


def sample_hmm(hmm: HMM, n_seq: int, length: int, rng: np.random.Generator) -> HMMSample:
    """Draw ``n_seq`` sequences from stationarity; loops over positions, never over sequences."""
    tokens, states = (paths[0] for paths in _sample_paths([hmm], n_seq, length, [rng]))
    belief = np.broadcast_to(hmm.stationary(), (n_seq, hmm.n_states))
    beliefs = np.empty((length, hmm.n_states, n_seq))
    for t in range(length):
        belief = hmm.update(belief, tokens[t])
        beliefs[t] = belief.T
    return HMMSample(tokens=tokens.T, states=states.T, beliefs=beliefs.transpose(2, 0, 1))


def sample_product_tokens(
    pairs: Sequence[tuple[HMM, HMM]], n_seq: int, length: int, rngs: Sequence[np.random.Generator]
) -> np.ndarray:
    """Joint tokens (len(pairs), n_seq, length) of several product processes of one shape, for training.

    Pair e uses ``rngs[e]`` exactly as :func:`sample_product` uses its rng (first factor, then second), so
    its tokens equal ``sample_product(*pairs[e], n_seq, length, rngs[e]).tokens``; the beliefs that
    training does not need are never computed.
    """
    first_factors, second_factors = zip(*pairs)
    first, _ = _sample_paths(first_factors, n_seq, length, rngs)
    second, _ = _sample_paths(second_factors, n_seq, length, rngs)
    return (first * second_factors[0].n_tokens + second).transpose(0, 2, 1)


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
