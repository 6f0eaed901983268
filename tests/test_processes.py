"""Processes against closed forms: SCIENCE.md matrices, eigenvalues, stationarity, products, validation."""

import itertools

import numpy as np
import pytest

from headshare.tasks.hmm.processes import (
    HMM,
    ProcessError,
    build_process,
    eigenvalue_bounds,
    mess3,
    product,
    two_state,
)


def sorted_eigenvalues(matrix: np.ndarray) -> np.ndarray:
    values = np.linalg.eigvals(matrix)
    assert np.allclose(values.imag, 0, atol=1e-12)
    return np.sort(values.real)


def test_mess3_matrices_are_the_published_ones():
    x, a = 0.15, 0.6  # public defaults: lambda = 1 - 3x = 0.55
    b, y = (1 - a) / 2, 1 - 2 * x
    expected = np.array(
        [
            [[a * y, b * x, b * x], [a * x, b * y, b * x], [a * x, b * x, b * y]],
            [[b * y, a * x, b * x], [b * x, a * y, b * x], [b * x, a * x, b * y]],
            [[b * y, b * x, a * x], [b * x, b * y, a * x], [b * x, b * x, a * y]],
        ]
    )
    np.testing.assert_allclose(mess3(1 - 3 * x, a).transitions, expected, atol=1e-15)


@pytest.mark.parametrize("lam", [-0.5, -0.3, 0.0, 0.3, 0.7, 0.9, 1.0])
@pytest.mark.parametrize("a", [0.0, 0.6, 0.85, 1.0])
def test_mess3_net_transition_eigenvalues_are_one_and_double_lambda(lam, a):
    hmm = mess3(lam, a)
    np.testing.assert_allclose(sorted_eigenvalues(hmm.net_transition()), sorted([1.0, lam, lam]), atol=1e-12)
    np.testing.assert_allclose(hmm.stationary(), np.full(3, 1 / 3), atol=1e-12)


@pytest.mark.parametrize("lam", [-1.0, -0.7, 0.0, 0.7, 1.0])
@pytest.mark.parametrize("a", [0.0, 0.8, 1.0])
def test_two_state_matches_its_definition(lam, a):
    hmm = two_state(lam, a)
    p = (1 - lam) / 2
    move = [[1 - p, p], [p, 1 - p]]
    for k, i, j in itertools.product(range(2), repeat=3):
        emit = a if k == j else 1 - a
        assert hmm.transitions[k, i, j] == pytest.approx(move[i][j] * emit, abs=1e-15)
    np.testing.assert_allclose(sorted_eigenvalues(hmm.net_transition()), sorted([1.0, lam]), atol=1e-12)
    np.testing.assert_allclose(hmm.stationary(), [0.5, 0.5], atol=1e-12)


def test_stationary_of_an_asymmetric_chain_is_the_closed_form():
    # Two states, flip probabilities p (from 0) and q (from 1): pi = (q, p) / (p + q).
    p, q = 0.2, 0.6
    net = np.array([[1 - p, p], [q, 1 - q]])
    emit = np.array([[0.9, 0.1], [0.3, 0.7]])  # P(k | destination j)
    hmm = HMM(np.einsum("ij,jk->kij", net, emit), name="asymmetric")
    np.testing.assert_allclose(hmm.stationary(), [q / (p + q), p / (p + q)], atol=1e-12)


def test_degenerate_stationary_is_uniform_only_when_doubly_stochastic():
    np.testing.assert_allclose(mess3(1.0, 0.85).stationary(), np.full(3, 1 / 3))
    # Two absorbing states plus a transient one: many stationary laws, not doubly stochastic.
    net = np.array([[1.0, 0, 0], [0, 1.0, 0], [0.5, 0.5, 0]])
    with pytest.raises(ProcessError, match="not unique"):
        HMM(net[None], name="absorbing").stationary()


@pytest.mark.parametrize("lam1, lam2", [(0.7, 0.7), (0.7, 0.3), (0.7, -0.3), (0.5, -0.5)])
def test_product_eigenvalues_are_products_of_factor_eigenvalues(lam1, lam2):
    joint = product(mess3(lam1, 0.85), mess3(lam2, 0.6))
    # {1, l1, l1} x {1, l2, l2}: 1 once, l1 twice, l2 twice, l1*l2 four times.
    expected = [1.0, lam1, lam1, lam2, lam2] + [lam1 * lam2] * 4
    np.testing.assert_allclose(sorted_eigenvalues(joint.net_transition()), sorted(expected), atol=1e-12)


def test_product_with_two_state_reaches_minus_point_seven():
    joint = product(two_state(0.7, 0.85), two_state(-0.7, 0.85))
    expected = [1.0, 0.7, -0.7, -0.49]
    np.testing.assert_allclose(sorted_eigenvalues(joint.net_transition()), sorted(expected), atol=1e-12)


def test_product_encodes_pairs_as_first_times_size_plus_second():
    p1, p2 = mess3(0.7, 0.85), two_state(-0.4, 0.7)
    joint = product(p1, p2)
    assert (joint.n_tokens, joint.n_states) == (6, 6)
    for k1, k2, s1, s2, t1, t2 in itertools.product(range(3), range(2), range(3), range(2), range(3), range(2)):
        expected = p1.transitions[k1, s1, t1] * p2.transitions[k2, s2, t2]
        assert joint.transitions[k1 * 2 + k2, s1 * 2 + s2, t1 * 2 + t2] == pytest.approx(expected, abs=1e-15)


def test_emission_predictive_and_update_follow_the_definitions():
    hmm = mess3(0.4, 0.75)
    T = hmm.transitions
    for i, k in itertools.product(range(3), range(3)):
        assert hmm.emission()[i, k] == pytest.approx(sum(T[k, i, j] for j in range(3)))
    beliefs = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    tokens = np.array([2, 0])
    for row, (belief, token) in enumerate(zip(beliefs, tokens)):
        unnormalised = [sum(belief[i] * T[token, i, j] for i in range(3)) for j in range(3)]
        np.testing.assert_allclose(hmm.update(beliefs, tokens)[row], np.array(unnormalised) / sum(unnormalised))
        next_token = [sum(belief[i] * T[k, i, j] for i in range(3) for j in range(3)) for k in range(3)]
        np.testing.assert_allclose(hmm.predictive(beliefs)[row], next_token)


def test_update_broadcasts_beliefs_against_tokens():
    hmm = mess3(0.7, 0.85)
    beliefs = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    every = hmm.update(beliefs[:, None, :], np.arange(3)[None, :])
    assert every.shape == (2, 3, 3)
    for token in range(3):
        np.testing.assert_allclose(every[:, token], hmm.update(beliefs, np.full(2, token)))


def test_build_process_and_bounds():
    np.testing.assert_array_equal(build_process("mess3", 0.7, 0.85).transitions, mess3(0.7, 0.85).transitions)
    np.testing.assert_array_equal(
        build_process("two_state", -0.7, 0.85).transitions, two_state(-0.7, 0.85).transitions
    )
    assert eigenvalue_bounds("mess3") == (-0.5, 1.0)
    assert eigenvalue_bounds("two_state") == (-1.0, 1.0)


def test_transitions_are_read_only():
    with pytest.raises(ValueError):
        mess3(0.7, 0.85).transitions[0, 0, 0] = 1.0


def test_mess3_minus_point_seven_is_explained():
    with pytest.raises(ProcessError, match=r"-0\.7") as info:
        mess3(-0.7, 0.85)
    message = str(info.value)
    assert "[-0.5, 1]" in message
    assert "1 + 2*lambda" in message
    assert "two_state" in message


@pytest.mark.parametrize(
    "build, value, allowed",
    [
        (lambda: mess3(1.2, 0.85), "1.2", "[-0.5, 1]"),
        (lambda: mess3(float("nan"), 0.85), "nan", "[-0.5, 1]"),
        (lambda: mess3(0.7, 1.1), "1.1", "[0, 1]"),
        (lambda: mess3(0.7, -0.1), "-0.1", "[0, 1]"),
        (lambda: mess3(0.7, float("inf")), "inf", "[0, 1]"),
        (lambda: two_state(-1.1, 0.85), "-1.1", "[-1, 1]"),
        (lambda: two_state(float("-inf"), 0.85), "-inf", "[-1, 1]"),
        (lambda: two_state(0.7, 2.0), "2.0", "[0, 1]"),
        (lambda: build_process("mess4", 0.7, 0.85), "mess4", "two_state"),
        (lambda: eigenvalue_bounds("three_state"), "three_state", "mess3"),
    ],
)
def test_bad_parameters_are_named_with_their_range(build, value, allowed):
    with pytest.raises(ProcessError) as info:
        build()
    assert value in str(info.value)
    assert allowed in str(info.value)


@pytest.mark.parametrize(
    "matrices, fragment",
    [
        (np.ones((2, 3)), "shape"),
        (np.ones((1, 2, 3)) / 3, "shape"),
        (np.array([[[1.5, -0.5], [0.5, 0.5]]]), "-0.5"),
        (np.array([[[0.5, 0.4], [0.5, 0.5]]]), "must be 1"),
        (np.array([[[np.nan, 1.0], [0.5, 0.5]]]), "finite"),
    ],
)
def test_invalid_matrices_are_rejected(matrices, fragment):
    with pytest.raises(ProcessError, match=fragment):
        HMM(matrices, name="bad")


def test_update_rejects_out_of_range_tokens():
    hmm = mess3(0.7, 0.85)
    with pytest.raises(ProcessError, match=r"\[0, 2\].*3"):
        hmm.update(np.full((1, 3), 1 / 3), np.array([3]))


def test_update_rejects_impossible_observations():
    hmm = two_state(1.0, 1.0)  # stays put and always emits its own label
    with pytest.raises(ProcessError, match="probability 0"):
        hmm.update(np.array([1.0, 0.0]), np.array(1))
