"""Samplers against exact frequencies (within 5 standard errors) and an independent belief recursion."""

import itertools

import numpy as np
import pytest

from headshare.tasks.hmm.processes import HMM, mess3, product, two_state
from headshare.tasks.hmm.sampler import sample_hmm, sample_product

N_SEQ = 100_000
TOLERANCE_IN_STANDARD_ERRORS = 5


def asymmetric_hmm() -> HMM:
    """Non-uniform stationary distribution (0.75, 0.25), so a wrong start state would show."""
    net = np.array([[0.8, 0.2], [0.6, 0.4]])
    emit = np.array([[0.9, 0.05, 0.05], [0.2, 0.3, 0.5]])  # P(k | destination j)
    return HMM(np.einsum("ij,jk->kij", net, emit), name="asymmetric")


def assert_frequencies_match(outcomes: np.ndarray, exact: np.ndarray) -> None:
    """Empirical frequencies of independent draws within 5 binomial standard errors of ``exact``."""
    exact = exact.ravel()
    observed = np.bincount(outcomes.ravel(), minlength=exact.size) / outcomes.size
    standard_error = np.sqrt(exact * (1 - exact) / outcomes.size)
    assert np.all(np.abs(observed - exact) <= TOLERANCE_IN_STANDARD_ERRORS * standard_error + 1e-12)


PROCESSES = [mess3(0.7, 0.85), mess3(-0.4, 0.6), two_state(-0.9, 0.8), asymmetric_hmm()]


@pytest.mark.parametrize("hmm", PROCESSES, ids=lambda hmm: hmm.name)
def test_token_and_bigram_frequencies_are_the_exact_ones(hmm):
    sample = sample_hmm(hmm, N_SEQ, 4, np.random.default_rng(0))
    assert sample.tokens.shape == sample.states.shape == (N_SEQ, 4)
    assert sample.tokens.dtype == sample.states.dtype == np.int64
    assert sample.beliefs.shape == (N_SEQ, 4, hmm.n_states)
    pi, T = hmm.stationary(), hmm.transitions
    n = hmm.n_tokens
    # One position per sequence keeps the draws independent.
    for position in (0, 3):
        token_probability = np.array([pi @ T[k] @ np.ones(hmm.n_states) for k in range(n)])
        assert_frequencies_match(sample.tokens[:, position], token_probability)
    bigram = np.array([[pi @ T[k] @ T[l] @ np.ones(hmm.n_states) for l in range(n)] for k in range(n)])
    assert_frequencies_match(sample.tokens[:, 1] * n + sample.tokens[:, 2], bigram)


@pytest.mark.parametrize("hmm", PROCESSES, ids=lambda hmm: hmm.name)
def test_states_are_the_destination_of_each_emission(hmm):
    """P(state_t = i, token_t+1 = k, state_t+1 = j) = pi_i T[k, i, j] at stationarity."""
    sample = sample_hmm(hmm, N_SEQ, 3, np.random.default_rng(1))
    m, n = hmm.n_states, hmm.n_tokens
    outcome = (sample.states[:, 1] * n + sample.tokens[:, 2]) * m + sample.states[:, 2]
    exact = np.array(
        [hmm.stationary()[i] * hmm.transitions[k, i, j] for i, k, j in itertools.product(range(m), range(n), range(m))]
    )
    assert_frequencies_match(outcome, exact)


def beliefs_by_recursion(hmm: HMM, tokens) -> list[list[float]]:
    """eta_0 = stationary, eta_t+1 = normalise(eta_t T[x_t]), element by element."""
    T, m = hmm.transitions, hmm.n_states
    belief = list(hmm.stationary())
    history = []
    for token in tokens:
        unnormalised = [sum(belief[i] * T[token, i, j] for i in range(m)) for j in range(m)]
        belief = [value / sum(unnormalised) for value in unnormalised]
        history.append(belief)
    return history


@pytest.mark.parametrize("hmm", PROCESSES, ids=lambda hmm: hmm.name)
def test_beliefs_follow_the_filter_recursion(hmm):
    sample = sample_hmm(hmm, 20, 9, np.random.default_rng(2))
    for tokens, beliefs in zip(sample.tokens, sample.beliefs):
        np.testing.assert_allclose(beliefs, beliefs_by_recursion(hmm, tokens), atol=1e-12)


def test_same_seed_gives_identical_samples_and_another_seed_does_not():
    hmm = mess3(0.7, 0.85)
    first, again = (sample_hmm(hmm, 500, 11, np.random.default_rng(7)) for _ in range(2))
    other = sample_hmm(hmm, 500, 11, np.random.default_rng(8))
    for field in ("tokens", "states", "beliefs"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    assert not np.array_equal(first.tokens, other.tokens)
    joint, joint_again = (sample_product(hmm, hmm, 500, 11, np.random.default_rng(7)) for _ in range(2))
    np.testing.assert_array_equal(joint.tokens, joint_again.tokens)
    np.testing.assert_array_equal(joint.beliefs, joint_again.beliefs)


def test_product_sample_joins_the_factors():
    p1, p2 = mess3(0.7, 0.85), two_state(-0.7, 0.8)
    sample = sample_product(p1, p2, 30, 8, np.random.default_rng(3))
    first, second = sample.factors
    np.testing.assert_array_equal(sample.tokens, first.tokens * 2 + second.tokens)
    np.testing.assert_array_equal(sample.states, first.states * 2 + second.states)
    assert sample.beliefs.shape == (30, 8, 6)
    # The joint belief is the product process's own filter belief, so the encodings agree.
    joint = product(p1, p2)
    for tokens, beliefs in zip(sample.tokens, sample.beliefs):
        np.testing.assert_allclose(beliefs, beliefs_by_recursion(joint, tokens), atol=1e-12)


def test_product_token_frequencies_are_the_product_process_ones():
    p1, p2 = mess3(0.7, 0.85), mess3(0.3, 0.6)
    joint = product(p1, p2)
    sample = sample_product(p1, p2, N_SEQ, 3, np.random.default_rng(4))
    pi, T, n = joint.stationary(), joint.transitions, joint.n_tokens
    bigram = np.array([[pi @ T[k] @ T[l] @ np.ones(joint.n_states) for l in range(n)] for k in range(n)])
    assert_frequencies_match(sample.tokens[:, 0] * n + sample.tokens[:, 1], bigram)


@pytest.mark.parametrize("n_seq, length", [(0, 5), (5, 0), (-1, 3)])
def test_sizes_must_be_positive(n_seq, length):
    with pytest.raises(ValueError, match=f"n_seq={n_seq}"):
        sample_hmm(mess3(0.7, 0.85), n_seq, length, np.random.default_rng(0))


def test_token_only_sampler_of_several_products_draws_each_one_independently():
    from headshare.tasks.hmm.sampler import sample_product, sample_product_tokens

    pairs = [(mess3(0.7, 0.85), mess3(-0.3, 0.6)), (mess3(0.2, 0.9), mess3(0.5, 0.4))]
    tokens = sample_product_tokens(pairs, 300, 9, [np.random.default_rng(seed) for seed in (7, 8)])
    for index, (p1, p2) in enumerate(pairs):
        alone = sample_product(p1, p2, 300, 9, np.random.default_rng(7 + index))
        np.testing.assert_array_equal(tokens[index], alone.tokens)


@pytest.mark.parametrize("hmms", [[mess3(0.7, 0.85)], [two_state(-0.9, 0.8), two_state(0.5, 0.6)]], ids=["one", "two"])
def test_every_state_counting_draws_what_the_gather_draws(hmms, monkeypatch):
    """Counting a draw against every state's cumulative row (many sequences, few states) and against the
    sequence's own gathered row are two orders of the same comparisons: the paths must be identical."""
    from headshare.tasks.hmm import sampler

    def paths():
        return sampler._sample_paths(hmms, 5000, 6, [np.random.default_rng(seed) for seed in range(len(hmms))])

    every_state = paths()
    monkeypatch.setattr(sampler, "ALL_STATES_MAX", 0)
    gathered = paths()
    for fast, reference in zip(every_state, gathered):
        np.testing.assert_array_equal(fast, reference)
