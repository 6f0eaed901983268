"""In-context linear regression: sampling, one-step-GD reference, exact moments, baselines.

Monte-Carlo checks compare a mean of i.i.d. per-task quantities with an exact value and allow
4 standard errors (the empirical SE of the mean): a correct implementation fails with
probability ~6e-5 per check, while any wrong constant in the model (a wrong E[x^4], a 1/N
dropped, a biased sampler) moves the mean by many SEs.
"""

from fractions import Fraction

import numpy as np
import pytest
import torch

from headshare.tasks.regression.sampler import (
    RegressionSample,
    expected_gd_loss,
    expected_optimal_gd_step,
    gd_loss,
    gd_prediction,
    least_squares_prediction,
    mean_squared_loss,
    optimal_gd_step,
    sample_regression,
    zero_loss,
)

D = N = 10
# Hand evaluation of the closed form for d = N = 10 with s = 1/12, m4 = 1/80:
# E[gy] = 10/144, E[tr A^2] = (10/80 + 90/144)/10 + (9/10)(10/144) = 11/80, E[g^2] = 11/960,
# eta* = E[gy]/E[g^2] = 200/33 and loss* = 0.5 (10/12 - E[gy]^2/E[g^2]) = 245/1188.
EXACT_STEP = Fraction(200, 33)
EXACT_LOSS = Fraction(245, 1188)
SPEC_LOSS, SPEC_LOSS_UNCERTAINTY = 0.2061, 0.0003


def mean_and_standard_error(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(values.size))


@pytest.fixture(scope="module")
def big_sample() -> RegressionSample:
    return sample_regression(200_000, D, N, np.random.default_rng(2024))


def test_sample_layout_and_generating_law():
    n_tasks, d, n_context = 4000, 3, 5
    sample = sample_regression(n_tasks, d, n_context, np.random.default_rng(0))
    tokens = sample.tokens
    assert tokens.shape == (n_tasks, n_context + 1, d + 1) and tokens.dtype == np.float64
    assert sample.targets.shape == (n_tasks,) and sample.weights.shape == (n_tasks, d)
    x = tokens[:, :, :d]
    assert np.all(np.abs(x) <= 0.5)
    assert np.all(tokens[:, -1, d] == 0.0)
    for task in range(3):
        w = sample.weights[task]
        for j in range(n_context):
            assert tokens[task, j, d] == pytest.approx(float(np.dot(x[task, j], w)), abs=1e-12)
        assert sample.targets[task] == pytest.approx(float(np.dot(x[task, -1], w)), abs=1e-12)
    squares_mean, squares_se = mean_and_standard_error(x.ravel() ** 2)
    assert abs(squares_mean - 1 / 12) < 4 * squares_se
    weight_mean, weight_se = mean_and_standard_error(sample.weights.ravel() ** 2)
    assert abs(weight_mean - 1.0) < 4 * weight_se


def test_closed_form_matches_hand_evaluation():
    eta_star = expected_optimal_gd_step(D, N)
    assert eta_star == pytest.approx(float(EXACT_STEP), rel=1e-12)
    assert expected_gd_loss(D, N, eta_star) == pytest.approx(float(EXACT_LOSS), rel=1e-12)
    assert expected_gd_loss(D, N, 0.0) == pytest.approx(D / 24, rel=1e-12)


def test_zero_loss_is_d_over_24_exactly_and_empirically(big_sample):
    assert zero_loss(D) == 10 / 24 and zero_loss(3) == 0.125
    mean, se = mean_and_standard_error(0.5 * big_sample.targets**2)
    assert abs(mean - D / 24) < 4 * se


def test_line_searched_gd_loss_matches_exact_value_and_spec(big_sample):
    """The per-task losses at the fitted step are averaged; fitting eta on the same sample
    lowers the mean only by 0.5 * E[g^2] * (eta_hat - eta*)^2 ~ 1e-6, far below the SE ~7e-4,
    because the loss is stationary in eta at eta*."""
    eta = optimal_gd_step(big_sample)
    losses = 0.5 * (gd_prediction(big_sample.tokens, eta) - big_sample.targets) ** 2
    mean, se = mean_and_standard_error(losses)
    assert mean == pytest.approx(gd_loss(big_sample, eta), rel=1e-12)
    assert abs(mean - float(EXACT_LOSS)) < 4 * se
    assert abs(mean - SPEC_LOSS) < 4 * se + SPEC_LOSS_UNCERTAINTY


def test_line_searched_step_matches_exact_value(big_sample):
    """eta_hat = mean(g y) / mean(g^2); its SE by the delta method is that of the mean of
    (g y - eta* g^2) / E[g^2]."""
    eta = optimal_gd_step(big_sample)
    g = gd_prediction(big_sample.tokens, 1.0)
    influence = (g * big_sample.targets - eta * g**2) / np.mean(g**2)
    _, se = mean_and_standard_error(influence)
    assert abs(eta - float(EXACT_STEP)) < 4 * se
    assert eta == pytest.approx(6.06, abs=0.1)


@pytest.mark.parametrize(("d", "n_context"), [(3, 5), (6, 2), (1, 1)])
def test_closed_form_matches_monte_carlo_at_other_sizes(d, n_context):
    sample = sample_regression(100_000, d, n_context, np.random.default_rng(d * 100 + n_context))
    for eta in (1.5, expected_optimal_gd_step(d, n_context)):
        losses = 0.5 * (gd_prediction(sample.tokens, eta) - sample.targets) ** 2
        mean, se = mean_and_standard_error(losses)
        assert abs(mean - expected_gd_loss(d, n_context, eta)) < 4 * se


def test_line_search_formula_matches_brute_force_grid():
    """A coarse grid over [0, 12] finds the basin, a fine grid around it the minimum."""
    sample = sample_regression(2000, D, N, np.random.default_rng(5))

    def grid_minimum(grid: np.ndarray) -> tuple[float, float]:
        losses = np.array([gd_loss(sample, eta) for eta in grid])
        return float(grid[np.argmin(losses)]), float(losses.min())

    coarse, _ = grid_minimum(np.arange(0.0, 12.0, 0.01))
    fine, fine_loss = grid_minimum(np.arange(coarse - 0.01, coarse + 0.01, 1e-4))
    eta = optimal_gd_step(sample)
    assert abs(eta - fine) <= 1e-4
    assert gd_loss(sample, eta) <= fine_loss + 1e-12


def test_gd_prediction_is_one_autograd_gradient_step():
    sample = sample_regression(6, 4, 7, np.random.default_rng(11))
    eta = 0.7
    tokens = torch.as_tensor(sample.tokens)
    x, y, x_query = tokens[:, :-1, :-1], tokens[:, :-1, -1], tokens[:, -1, :-1]
    w = torch.zeros(6, 4, dtype=torch.float64, requires_grad=True)
    residuals = torch.einsum("tnd,td->tn", x, w) - y
    context_loss = (0.5 * residuals**2).sum(dim=1) / x.shape[1]
    (gradient,) = torch.autograd.grad(context_loss.sum(), w)
    expected = ((-eta * gradient) * x_query).sum(dim=1).numpy()
    np.testing.assert_allclose(gd_prediction(sample.tokens, eta), expected, rtol=1e-12, atol=1e-14)


def test_least_squares_recovers_w_when_context_spans_the_inputs(big_sample):
    tokens, targets = big_sample.tokens[:5000], big_sample.targets[:5000]
    predictions = least_squares_prediction(tokens)
    np.testing.assert_allclose(predictions, targets, atol=1e-8)
    assert mean_squared_loss(predictions, targets) < 1e-12
    assert mean_squared_loss(predictions, targets) < 1e-6 * float(EXACT_LOSS)


def test_least_squares_underdetermined_loss_is_the_prior_on_unseen_directions():
    """With N < d the posterior mean is exact on the span of the context and 0 elsewhere,
    so the expected loss is 0.5 * E|P_null x_q|^2 = 0.5 * (d - N) / 12."""
    d, n_context = 10, 5
    sample = sample_regression(50_000, d, n_context, np.random.default_rng(3))
    losses = 0.5 * (least_squares_prediction(sample.tokens) - sample.targets) ** 2
    mean, se = mean_and_standard_error(losses)
    assert abs(mean - 0.5 * (d - n_context) / 12) < 4 * se


def test_ridge_matches_the_dual_form():
    sample = sample_regression(20, 5, 3, np.random.default_rng(9))
    ridge = 0.3
    x, y, x_query = sample.tokens[:, :-1, :-1], sample.tokens[:, :-1, -1], sample.tokens[:, -1, :-1]
    expected = []
    for task in range(20):
        kernel = x[task] @ x[task].T + ridge * np.eye(3)
        w_hat = x[task].T @ np.linalg.solve(kernel, y[task])
        expected.append(w_hat @ x_query[task])
    np.testing.assert_allclose(least_squares_prediction(sample.tokens, ridge), expected, rtol=1e-10)


def test_same_seed_same_data_and_different_seed_different_data():
    first = sample_regression(50, 4, 6, np.random.default_rng(1))
    again = sample_regression(50, 4, 6, np.random.default_rng(1))
    other = sample_regression(50, 4, 6, np.random.default_rng(2))
    for field in ("tokens", "targets", "weights"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    assert not np.array_equal(first.tokens, other.tokens)


@pytest.mark.parametrize(
    ("n_tasks", "d", "n_context", "message"),
    [
        (0, 3, 3, "n_tasks must be >= 1, got 0"),
        (5, 0, 3, "d must be >= 1, got 0"),
        (5, 3, -1, "n_context must be >= 1, got -1"),
    ],
)
def test_bad_sizes_are_rejected(n_tasks, d, n_context, message):
    with pytest.raises(ValueError, match=message):
        sample_regression(n_tasks, d, n_context, np.random.default_rng(0))


def test_bad_tokens_and_ridge_are_rejected():
    with pytest.raises(ValueError, match=r"shape \(n_tasks, n_context \+ 1, d \+ 1\).*\(4, 1, 3\)"):
        gd_prediction(np.zeros((4, 1, 3)), 1.0)
    with pytest.raises(ValueError, match="ridge must be >= 0, got -0.1"):
        least_squares_prediction(np.zeros((4, 3, 3)), ridge=-0.1)
