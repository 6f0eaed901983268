"""Exact references against brute-force enumeration, sampling, and the SCIENCE.md section 8 numbers."""

import itertools
import math

import numpy as np
import pytest

from headshare.tasks.hmm.exact import (
    conditional_entropies,
    effective_decay,
    filter_log_loss,
    filter_predictions,
    filter_sensitivity,
    product_conditional_entropies,
)
from headshare.tasks.hmm.processes import HMM, ProcessError, mess3, product, two_state
from headshare.tasks.hmm.sampler import sample_hmm


def sequence_probability(hmm: HMM, sequence) -> float:
    """P(x_1..x_t) = pi T[x_1] ... T[x_t] 1, one matrix product at a time."""
    vector = hmm.stationary()
    for token in sequence:
        vector = vector @ hmm.transitions[token]
    return float(vector.sum())


def brute_force_conditional_entropies(hmm: HMM, length: int) -> list[float]:
    """H(X_t | X_<t) = -sum over x_1..x_t of P(x_1..x_t) log P(x_t | x_<t), sequence by sequence."""
    result = []
    for t in range(1, length + 1):
        total = 0.0
        for sequence in itertools.product(range(hmm.n_tokens), repeat=t):
            joint = sequence_probability(hmm, sequence)
            if joint > 0:
                total -= joint * math.log(joint / sequence_probability(hmm, sequence[:-1]))
        result.append(total)
    return result


def asymmetric_hmm() -> HMM:
    net = np.array([[0.8, 0.2], [0.6, 0.4]])
    emit = np.array([[0.9, 0.05, 0.05], [0.2, 0.3, 0.5]])  # P(k | destination j), 3 tokens
    return HMM(np.einsum("ij,jk->kij", net, emit), name="asymmetric")


@pytest.mark.parametrize(
    "hmm, length",
    [(mess3(0.7, 0.85), 5), (mess3(-0.4, 0.6), 4), (two_state(-0.6, 0.8), 6), (asymmetric_hmm(), 4)],
)
def test_conditional_entropies_match_brute_force(hmm, length):
    np.testing.assert_allclose(
        conditional_entropies(hmm, length), brute_force_conditional_entropies(hmm, length), atol=1e-12
    )


def test_first_conditional_entropy_is_the_stationary_token_entropy():
    assert conditional_entropies(mess3(0.7, 0.85), 1)[0] == pytest.approx(math.log(3), abs=1e-14)
    assert conditional_entropies(two_state(0.3, 0.9), 1)[0] == pytest.approx(math.log(2), abs=1e-14)
    hmm = asymmetric_hmm()
    pi = np.array([0.75, 0.25])  # closed form for flip probabilities 0.2 and 0.6
    tokens = pi @ hmm.emission()
    assert conditional_entropies(hmm, 1)[0] == pytest.approx(-(tokens * np.log(tokens)).sum(), abs=1e-14)


def test_product_entropies_are_the_sum_and_match_direct_enumeration():
    p1, p2 = mess3(0.7, 0.85), two_state(-0.7, 0.8)
    direct = conditional_entropies(product(p1, p2), 4)
    np.testing.assert_allclose(product_conditional_entropies(p1, p2, 4), direct, atol=1e-12)
    np.testing.assert_allclose(direct[:3], brute_force_conditional_entropies(product(p1, p2), 3), atol=1e-12)


def within_last_digit(value: float, reported: str) -> bool:
    """A value reported to a few digits agrees if it is within one unit of the last digit shown."""
    return abs(value - float(reported)) <= 10.0 ** -len(reported.split(".")[1])


def test_optimal_loss_of_the_mess3_pair_matches_the_probe():
    """SCIENCE.md section 8: (0.7, 0.7), a = 0.85, context 10, both sequence conventions."""
    factor = mess3(0.7, 0.85)
    entropies = product_conditional_entropies(factor, factor, 11)
    assert entropies[1:11].mean() == pytest.approx(1.8320, abs=5e-4)  # predict t = 2..11
    assert entropies[0:10].mean() == pytest.approx(1.8690, abs=5e-4)  # predict t = 1..10 (BOS)


@pytest.mark.parametrize(
    "lam, reported",
    [
        (0.7, "0.021"),
        (-0.5, "0.014"),
        (0.5, "0.004"),
        (-0.3, "0.0009"),
        (0.3, "0.0005"),
        (0.9, "0.094"),
        (0.8, "0.045"),
        (0.6, "0.010"),
    ],
)
def test_information_in_older_tokens_matches_the_probe(lam, reported):
    """H(X_t | X_t-1) - H(X_t | X_<t) at large t, a = 0.85; reported values agree to one unit in the last digit."""
    entropies = conditional_entropies(mess3(lam, 0.85), 13)
    assert within_last_digit(entropies[1] - entropies[-1], reported)


@pytest.mark.parametrize("lam, reported", [(0.7, "0.019"), (0.3, "0.0024")])
def test_context_gain_at_weak_emission_matches_section_2(lam, reported):
    """ln 3 - H(X_t | X_<t) at large t, a = 0.6: the best achievable improvement on the unigram loss."""
    entropies = conditional_entropies(mess3(lam, 0.6), 12)
    assert within_last_digit(math.log(3) - entropies[-1], reported)


def test_enumeration_refuses_sizes_that_do_not_fit():
    joint = product(mess3(0.7, 0.85), mess3(0.7, 0.85))
    with pytest.raises(ValueError, match="9\\^11"):
        conditional_entropies(joint, 11)
    with pytest.raises(ValueError, match="length=0"):
        conditional_entropies(mess3(0.7, 0.85), 0)


def test_filter_predictions_are_ratios_of_sequence_probabilities():
    hmm = mess3(0.5, 0.7)
    tokens = np.array([[0, 2, 2, 1], [1, 1, 0, 2]])
    predictions = filter_predictions(hmm, tokens)
    for b, t, k in itertools.product(range(2), range(4), range(3)):
        prefix = list(tokens[b, :t])
        expected = sequence_probability(hmm, prefix + [k]) / sequence_probability(hmm, prefix)
        assert predictions[b, t, k] == pytest.approx(expected, abs=1e-12)
    expected_loss = [[-math.log(predictions[b, t, tokens[b, t]]) for t in range(4)] for b in range(2)]
    np.testing.assert_allclose(filter_log_loss(hmm, tokens), expected_loss)


def test_filter_log_loss_on_samples_averages_to_the_conditional_entropies():
    hmm = mess3(0.7, 0.85)
    tokens = sample_hmm(hmm, 40_000, 6, np.random.default_rng(1)).tokens
    loss = filter_log_loss(hmm, tokens)
    standard_error = loss.std(axis=0) / np.sqrt(loss.shape[0])
    deviation = np.abs(loss.mean(axis=0) - conditional_entropies(hmm, 6))
    assert np.all(deviation < 5 * standard_error)


def brute_force_sensitivity(hmm: HMM, context: int) -> list[float]:
    """S(n) straight from the definition: every sequence, every replacement token, predictions by ratios."""

    def prediction(sequence):
        normaliser = sequence_probability(hmm, sequence)
        extended = [sequence_probability(hmm, list(sequence) + [k]) for k in range(hmm.n_tokens)]
        return np.array(extended) / normaliser

    result = []
    for distance in range(context):
        position = context - 1 - distance
        total = 0.0
        for sequence in itertools.product(range(hmm.n_tokens), repeat=context):
            original = prediction(sequence)
            for replacement in range(hmm.n_tokens):
                changed = list(sequence)
                changed[position] = replacement
                variation = 0.5 * np.abs(prediction(changed) - original).sum()
                total += sequence_probability(hmm, sequence) * variation / hmm.n_tokens
        result.append(total)
    return result


@pytest.mark.parametrize(
    "hmm, context", [(mess3(0.7, 0.85), 4), (two_state(-0.7, 0.8), 5), (asymmetric_hmm(), 3)]
)
def test_sensitivity_matches_its_definition(hmm, context):
    np.testing.assert_allclose(filter_sensitivity(hmm, context), brute_force_sensitivity(hmm, context), atol=1e-12)


def test_sampled_sensitivity_agrees_with_the_exact_one():
    hmm = mess3(0.7, 0.6)
    exact = filter_sensitivity(hmm, 6, 3)
    sampled = filter_sensitivity(hmm, 6, 3, n_samples=20_000, rng=np.random.default_rng(2))
    # A total variation lies in [0, 1], so 20,000 draws give a standard error below 0.5 / sqrt(20,000) = 0.0035.
    np.testing.assert_allclose(sampled, exact, atol=5 * 0.0035)
    np.testing.assert_allclose(sampled, exact, rtol=0.05)


def test_sampled_product_sensitivity_reduces_to_the_informative_factor():
    """A two-state factor with a = 1/2 emits independent fair coins, so the joint prediction is the first
    factor's times a uniform coin: replacing a joint token moves it exactly as much as the first factor's."""
    informative = mess3(0.7, 0.7)
    joint = product(informative, two_state(0.5, 0.5))
    sampled = filter_sensitivity(joint, 6, 3, n_samples=20_000, rng=np.random.default_rng(3))
    np.testing.assert_allclose(sampled, filter_sensitivity(informative, 6, 3), atol=5 * 0.0035)


def test_exact_sensitivity_refuses_impossible_sequences():
    with pytest.raises(ProcessError, match="probability 0"):
        filter_sensitivity(two_state(1.0, 1.0), 3)


@pytest.mark.parametrize(
    "a, ratio", [(0.85, 0.324), (0.7, 0.513), (0.6, 0.603), (0.5, 0.666), (0.4, 0.698), (0.34, 0.7005)]
)
def test_filter_decay_matches_the_probe(a, ratio):
    """SCIENCE.md section 8, one Mess3 factor at lambda = 0.7, context 10: the reported per-step ratio is the
    log-linear fit of S(n) over distances n = 1..7 (distance 0 and the two oldest tokens left out)."""
    sensitivity = filter_sensitivity(mess3(0.7, a), 10)
    distances = np.arange(1, 8)
    fitted = math.exp(np.polyfit(distances, np.log(sensitivity[distances]), 1)[0])
    assert fitted == pytest.approx(ratio, abs=1e-3)
    # Per-distance ratios are nearly constant over the fitted range.
    np.testing.assert_allclose(effective_decay(sensitivity)[1:7], fitted, atol=0.015)


def test_effective_decay_of_a_geometric_sequence_is_its_ratio():
    np.testing.assert_allclose(effective_decay(0.3 * 0.6 ** np.arange(6)), np.full(5, 0.6))


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"context": 0}, "context=0"),
        ({"context": 4, "max_distance": 5}, "max_distance=5"),
        ({"context": 4, "n_samples": 0, "rng": np.random.default_rng(0)}, "n_samples=0"),
        ({"context": 4, "n_samples": 10}, "rng"),
    ],
)
def test_sensitivity_rejects_bad_arguments(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        filter_sensitivity(mess3(0.7, 0.85), **kwargs)
