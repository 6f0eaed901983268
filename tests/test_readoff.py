"""Readoff task: exact class probabilities, uniform positions and noise, label correctness."""

import itertools

import numpy as np
import pytest

from headshare.tasks.readoff.sampler import (
    CLASS_PAIRS,
    N_CLASSES,
    N_NOISE,
    N_SIGNAL,
    READOFF_TOKEN,
    VOCAB_SIZE,
    pair_class,
    sample_readoff,
)

N_SEQ = 200_000
LENGTH = 8


@pytest.fixture(scope="module")
def sample():
    return sample_readoff(N_SEQ, LENGTH, np.random.default_rng(1234))


def assert_binomial_counts(counts: np.ndarray, n_trials: int, probabilities: np.ndarray) -> None:
    """Each count is Binomial(n_trials, p): within 5 standard errors of n_trials * p."""
    expected = n_trials * probabilities
    standard_error = np.sqrt(n_trials * probabilities * (1 - probabilities))
    assert np.all(np.abs(counts - expected) < 5 * standard_error), (counts, expected)


def test_vocabulary_constants():
    assert (N_SIGNAL, N_NOISE, READOFF_TOKEN, VOCAB_SIZE, N_CLASSES) == (4, 7, 11, 12, 10)


def test_pair_class_is_a_symmetric_bijection_onto_the_classes():
    a, b = np.meshgrid(np.arange(4), np.arange(4), indexing="ij")
    classes = pair_class(a, b)
    np.testing.assert_array_equal(classes, classes.T)
    assert sorted(set(classes.ravel().tolist())) == list(range(10))
    for x, y in itertools.product(range(4), repeat=2):
        assert CLASS_PAIRS[pair_class(x, y)] == (min(x, y), max(x, y))
    assert len(set(CLASS_PAIRS)) == 10
    assert all(x <= y for x, y in CLASS_PAIRS)


def test_pair_class_rejects_non_signal_tokens():
    with pytest.raises(ValueError, match=r"0\.\.3.*got values in 0\.\.4"):
        pair_class(np.array([0, 4]), np.array([1, 1]))
    with pytest.raises(ValueError, match="signal token b"):
        pair_class(0, -1)


def test_sequence_structure(sample):
    tokens = sample.tokens
    assert tokens.shape == (N_SEQ, LENGTH) and tokens.dtype == np.int64
    assert np.all(tokens[:, -1] == READOFF_TOKEN)
    assert not np.any(tokens[:, :-1] == READOFF_TOKEN)
    assert np.all(tokens >= 0) and np.all(tokens < VOCAB_SIZE)
    is_signal = tokens < N_SIGNAL
    assert np.all(is_signal.sum(axis=1) == 2)
    positions = sample.signal_positions
    assert np.all(positions[:, 0] < positions[:, 1]) and np.all(positions[:, 1] < LENGTH - 1)
    np.testing.assert_array_equal(np.nonzero(is_signal)[1].reshape(N_SEQ, 2), positions)
    np.testing.assert_array_equal(
        np.take_along_axis(tokens, positions, axis=1), sample.signal_tokens
    )


def test_labels_name_the_pair_found_in_the_tokens(sample):
    pair_index = {pair: index for index, pair in enumerate(CLASS_PAIRS)}
    found = np.sort(sample.tokens[sample.tokens < N_SIGNAL].reshape(N_SEQ, 2), axis=1)
    expected = np.array([pair_index[(a, b)] for a, b in found.tolist()])
    np.testing.assert_array_equal(sample.labels, expected)
    assert sample.labels.dtype == np.int64


def test_class_frequencies_are_one_sixteenth_per_double_two_per_pair(sample):
    probabilities = np.array([(1 if a == b else 2) / 16 for a, b in CLASS_PAIRS])
    counts = np.bincount(sample.labels, minlength=N_CLASSES)
    assert_binomial_counts(counts, N_SEQ, probabilities)


def test_signal_positions_are_uniform_over_distinct_pairs(sample):
    slot_pairs = list(itertools.combinations(range(LENGTH - 1), 2))
    code = sample.signal_positions[:, 0] * LENGTH + sample.signal_positions[:, 1]
    counts = np.array([np.sum(code == i * LENGTH + j) for i, j in slot_pairs])
    assert counts.sum() == N_SEQ
    assert_binomial_counts(counts, N_SEQ, np.full(len(slot_pairs), 1 / len(slot_pairs)))


def test_signal_tokens_are_independent_and_uniform(sample):
    ordered = sample.signal_tokens[:, 0] * N_SIGNAL + sample.signal_tokens[:, 1]
    counts = np.bincount(ordered, minlength=N_SIGNAL**2)
    assert_binomial_counts(counts, N_SEQ, np.full(N_SIGNAL**2, 1 / 16))


def test_noise_tokens_are_uniform(sample):
    noise = sample.tokens[:, :-1][sample.tokens[:, :-1] >= N_SIGNAL]
    assert noise.size == N_SEQ * (LENGTH - 3)
    counts = np.bincount(noise - N_SIGNAL, minlength=N_NOISE)
    assert_binomial_counts(counts, noise.size, np.full(N_NOISE, 1 / N_NOISE))


def test_shortest_sequence_has_signals_in_both_slots():
    sample = sample_readoff(500, 3, np.random.default_rng(0))
    assert np.all(sample.signal_positions == [0, 1])
    assert np.all(sample.tokens[:, :2] < N_SIGNAL) and np.all(sample.tokens[:, 2] == READOFF_TOKEN)


def test_same_seed_same_data_and_different_seed_different_data():
    first = sample_readoff(100, 10, np.random.default_rng(7))
    again = sample_readoff(100, 10, np.random.default_rng(7))
    other = sample_readoff(100, 10, np.random.default_rng(8))
    for field in ("tokens", "labels", "signal_positions", "signal_tokens"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    assert not np.array_equal(first.tokens, other.tokens)


@pytest.mark.parametrize(
    ("n_seq", "length", "message"),
    [(10, 2, "length must be >= 3.*got 2"), (10, 0, "got 0"), (0, 5, "n_seq must be >= 1, got 0")],
)
def test_bad_sizes_are_rejected(n_seq, length, message):
    with pytest.raises(ValueError, match=message):
        sample_readoff(n_seq, length, np.random.default_rng(0))
