"""Signal preferences and order comparisons on synthetic attention with known preferences."""

import itertools

import numpy as np
import pytest

from headshare.analysis.readoff import (
    accuracy,
    kendall_tau,
    orders_inverted,
    preference_order,
    signal_preference,
)
from headshare.tasks.readoff.sampler import VOCAB_SIZE, sample_readoff


def readoff_attention(tokens: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Softmax attention per head over key positions: signal token s scores scores[h, s],
    every other token 0."""
    table = np.zeros((scores.shape[0], VOCAB_SIZE))
    table[:, : scores.shape[1]] = scores
    weights = np.exp(table[:, tokens]).transpose(1, 0, 2)  # (N, H, T)
    return weights / weights.sum(axis=-1, keepdims=True)


def test_preference_equals_a_loop_over_occurrences():
    rng = np.random.default_rng(0)
    sample = sample_readoff(50, 7, rng)
    attn = rng.dirichlet(np.ones(7), size=(50, 2))
    preference = signal_preference(attn, sample.tokens)
    for h in range(2):
        for s in range(4):
            values = [
                attn[n, h, t] for n in range(50) for t in range(7) if sample.tokens[n, t] == s
            ]
            assert preference[h, s] == pytest.approx(np.mean(values), rel=1e-12)


def test_known_preferences_give_inverted_orders_for_mirrored_heads():
    sample = sample_readoff(2000, 10, np.random.default_rng(1))
    scores = np.array([[3.0, 2.0, 1.0, 0.5], [0.5, 1.0, 2.0, 3.0], [1.0, 3.0, 0.5, 2.0]])
    preference = signal_preference(readoff_attention(sample.tokens, scores), sample.tokens)
    orders = preference_order(preference)
    np.testing.assert_array_equal(orders, [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]])
    assert orders_inverted(orders[0], orders[1])
    assert kendall_tau(orders[0], orders[1]) == -1.0
    assert not orders_inverted(orders[0], orders[2])


def test_a_token_that_never_occurs_has_no_preference():
    tokens = np.array([[0, 5, 1, 11], [1, 6, 0, 11]])
    preference = signal_preference(np.full((2, 1, 4), 0.25), tokens)
    np.testing.assert_allclose(preference[0, :2], 0.25)
    assert np.all(np.isnan(preference[0, 2:]))


def brute_force_tau(order_a, order_b) -> float:
    """Concordant minus discordant item pairs over all pairs."""
    position_a = {token: i for i, token in enumerate(order_a)}
    position_b = {token: i for i, token in enumerate(order_b)}
    total = 0
    pairs = list(itertools.combinations(order_a, 2))
    for x, y in pairs:
        same_side = (position_a[x] < position_a[y]) == (position_b[x] < position_b[y])
        total += 1 if same_side else -1
    return total / len(pairs)


def test_kendall_tau_matches_brute_force_on_all_orders_of_four():
    reference = (0, 1, 2, 3)
    values = set()
    for order in itertools.permutations(range(4)):
        tau = kendall_tau(np.array(reference), np.array(order))
        assert tau == pytest.approx(brute_force_tau(reference, order))
        assert orders_inverted(np.array(reference), np.array(order)) == (order == (3, 2, 1, 0))
        values.add(round(tau, 6))
    assert values == {round(1 - 2 * k / 6, 6) for k in range(7)}


def test_accuracy_counts_arg_max_hits():
    logits = np.array([[0.1, 2.0, 0.0], [3.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 5.0]])
    assert accuracy(logits, np.array([1, 0, 0, 2])) == 0.75


@pytest.mark.parametrize(
    "call",
    [
        lambda: signal_preference(np.ones((2, 1, 3)), np.zeros((2, 4), dtype=int)),
        lambda: preference_order(np.array([[1.0, np.nan]])),
        lambda: kendall_tau(np.array([0, 1, 1]), np.array([0, 1, 2])),
        lambda: kendall_tau(np.array([0, 1, 2]), np.array([0, 1])),
        lambda: accuracy(np.ones((2, 3)), np.array([0, 3])),
        lambda: accuracy(np.ones((2, 3)), np.array([0])),
    ],
)
def test_readoff_analysis_rejects_bad_input(call):
    with pytest.raises(ValueError):
        call()
