"""Attention-by-distance and decay fits against closed forms and brute-force loops."""

import math

import numpy as np
import pytest

from headshare.analysis.decay import (
    attention_by_distance,
    fit_decay,
    fit_decay_by_parity,
    signed_decay,
    student_t_quantile,
)


def geometric_pattern(rates: np.ndarray, length: int) -> np.ndarray:
    """Causal attention with key weight proportional to rate^(q - k), one rate per head."""
    distance = np.arange(length)[:, None] - np.arange(length)[None, :]
    raw = np.where(distance >= 0, rates[:, None, None] ** np.maximum(distance, 0), 0.0)
    return raw / raw.sum(axis=-1, keepdims=True)


def random_causal_pattern(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    length = shape[-1]
    raw = rng.random(shape) * np.tril(np.ones((length, length)))
    return raw / raw.sum(axis=-1, keepdims=True)


def test_per_query_curves_of_a_geometric_head_match_the_closed_form():
    rates, length = np.array([0.7, 0.3]), 9
    pattern = np.broadcast_to(geometric_pattern(rates, length), (5, 2, length, length))
    profile = attention_by_distance(pattern)
    for h, r in enumerate(rates):
        for q in range(length):
            normaliser = (1 - r ** (q + 1)) / (1 - r)
            expected = [r**n / normaliser if n <= q else np.nan for n in range(length)]
            np.testing.assert_allclose(profile.per_query[h, q], expected, rtol=1e-12)
        np.testing.assert_allclose(
            profile.last[h], r ** np.arange(length) * (1 - r) / (1 - r**length)
        )
    np.testing.assert_array_equal(profile.count, length - np.arange(length))
    np.testing.assert_array_equal(profile.distances, np.arange(length))


def test_mean_by_distance_equals_a_loop_over_all_pairs_with_weights():
    rng = np.random.default_rng(0)
    n_seq, heads, length = 6, 3, 7
    pattern = random_causal_pattern(rng, (n_seq, heads, length, length))
    weights = rng.random(n_seq)
    profile = attention_by_distance(pattern, weights)
    for h in range(heads):
        for n in range(length):
            total = weight_sum = 0.0
            for seq in range(n_seq):
                for q in range(n, length):
                    total += weights[seq] * pattern[seq, h, q, q - n]
                    weight_sum += weights[seq]
            assert profile.mean[h, n] == pytest.approx(total / weight_sum, rel=1e-12)


def test_integer_weights_equal_duplicated_sequences_and_leading_axes_are_kept():
    rng = np.random.default_rng(1)
    pattern = random_causal_pattern(rng, (2, 4, 2, 5, 5))  # (models, N, H, T, T)
    weights = np.array([[1, 3, 0, 2], [2, 1, 1, 1]])
    weighted = attention_by_distance(pattern, weights)
    for model in range(2):
        duplicated = np.repeat(pattern[model], weights[model], axis=0)
        reference = attention_by_distance(duplicated)
        np.testing.assert_allclose(weighted.mean[model], reference.mean, rtol=1e-12)
        np.testing.assert_allclose(weighted.last[model], reference.last, rtol=1e-12)
    assert weighted.per_query.shape == (2, 2, 5, 5)


@pytest.mark.parametrize(
    "bad, weights",
    [
        (np.ones((2, 1, 3, 4)), None),  # not square
        (np.ones((1, 3, 3)), None),  # no head axis
        (-np.eye(3)[None, None], None),  # negative weight
        (np.eye(3)[None, None], np.array([1.0, 1.0])),  # weights length
        (np.eye(3)[None, None], np.array([0.0])),  # zero total weight
    ],
)
def test_attention_by_distance_rejects_bad_input(bad, weights):
    with pytest.raises(ValueError):
        attention_by_distance(bad, weights)


@pytest.mark.parametrize(
    "dof, expected",
    [
        (1, math.tan(math.pi * 0.95 / 2)),  # Cauchy: closed form
        (2, 0.95 / math.sqrt(2 * 0.975 * 0.025)),  # closed form (2p - 1) / sqrt(2 p (1 - p))
        (3, 3.182446305),
        (10, 2.228138852),
        (30, 2.042272456),
    ],
)
def test_student_t_quantile_matches_tables(dof, expected):
    assert student_t_quantile(0.95, dof) == pytest.approx(expected, rel=1e-8)


def test_exact_geometric_curves_give_the_rate_with_a_collapsed_interval():
    distances = np.arange(10)
    intercepts = np.array([0.5, 0.2, 0.9])[:, None]
    curves = intercepts * 0.6**distances
    curves[:, 0] = [0.9, 0.01, 0.4]  # distance 0 is arbitrary and must not matter
    fit = fit_decay(curves, distances)
    assert fit.rate == pytest.approx(0.6, rel=1e-12)
    assert fit.ci_low == pytest.approx(0.6, rel=1e-12)
    assert fit.ci_high == pytest.approx(0.6, rel=1e-12)
    assert fit.log_intercept == pytest.approx(np.log(intercepts).mean(), rel=1e-12)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.n == 3


def test_points_from_the_first_one_below_the_floor_on_are_ignored():
    distances = np.arange(12)
    curve = 0.3**distances
    curve[7] = 1e-7  # noise below the floor ...
    curve[8:] = [1e-3, 2e-4, 5e-3, 1e-2]  # ... then noise above it, which must not count
    fit = fit_decay(curve, distances, floor=1e-4)
    assert fit.rate == pytest.approx(0.3, rel=1e-12)
    assert fit.n == 1


def test_nan_ends_a_curve_and_short_curves_are_dropped():
    distances = np.arange(6)
    curves = 0.5 ** np.tile(distances, (3, 1)).astype(float)
    curves[1, 3:] = np.nan  # two usable points: kept
    curves[2, 2:] = np.nan  # one usable point: dropped
    fit = fit_decay(curves, distances)
    assert fit.rate == pytest.approx(0.5, rel=1e-12)
    assert fit.n == 2


def test_no_usable_curve_gives_nan():
    fit = fit_decay(np.array([[1.0, 1e-6, 1e-6, 1e-6]]), np.arange(4))
    assert fit.n == 0 and np.isnan(fit.rate) and np.isnan(fit.ci_low)


def test_single_curve_interval_is_the_least_squares_t_interval():
    rng = np.random.default_rng(2)
    distances = np.arange(1, 9)
    log_curve = -0.2 + distances * np.log(0.55) + 0.05 * rng.standard_normal(8)
    fit = fit_decay(np.exp(log_curve), distances)
    (slope, intercept), cov = np.polyfit(distances, log_curve, 1, cov=True)
    half_width = student_t_quantile(0.95, 6) * np.sqrt(cov[0, 0])
    assert fit.rate == pytest.approx(np.exp(slope), rel=1e-10)
    assert fit.log_intercept == pytest.approx(intercept, rel=1e-10)
    assert fit.ci_low == pytest.approx(np.exp(slope - half_width), rel=1e-10)
    assert fit.ci_high == pytest.approx(np.exp(slope + half_width), rel=1e-10)
    residual = log_curve - np.polyval([slope, intercept], distances)
    r2 = 1 - np.sum(residual**2) / np.sum((log_curve - log_curve.mean()) ** 2)
    assert fit.r2 == pytest.approx(r2, rel=1e-10)


def test_interval_over_noisy_curves_covers_the_true_rate_about_95_percent():
    rng = np.random.default_rng(3)
    distances = np.arange(1, 7)
    trials, covered = 400, 0
    for _ in range(trials):
        slopes = np.log(0.7) + 0.05 * rng.standard_normal((5, 1))
        curves = 0.4 * np.exp(slopes * distances + 0.02 * rng.standard_normal((5, 6)))
        fit = fit_decay(curves, distances)
        covered += fit.ci_low <= 0.7 <= fit.ci_high
    assert 0.92 <= covered / trials <= 0.98


def test_parity_fit_separates_even_and_odd_rates():
    distances = np.arange(12)
    curve = np.where(distances % 2 == 0, 0.8**distances, 0.3 * 0.5**distances)
    fits = fit_decay_by_parity(curve, distances)
    assert fits.even.rate == pytest.approx(0.8, rel=1e-12)
    assert fits.odd.rate == pytest.approx(0.5, rel=1e-12)
    assert fits.even.n == fits.odd.n == 1


def test_parity_fit_with_zero_odd_attention_has_no_odd_fit():
    distances = np.arange(10)
    curve = np.where(distances % 2 == 0, 0.7**distances, 0.0)
    fits = fit_decay_by_parity(curve, distances)
    assert fits.even.rate == pytest.approx(0.7, rel=1e-12)
    assert fits.odd.n == 0


@pytest.mark.parametrize("lam", [-0.6, -0.3, 0.4, 0.9])
def test_signed_decay_recovers_lambda_with_its_sign(lam):
    coefficients = 3.0 * lam ** np.arange(8)
    fit = signed_decay(coefficients)
    assert fit.rate == pytest.approx(lam, rel=1e-12)
    assert fit.log_intercept == pytest.approx(np.log(3.0), rel=1e-12)


def test_signed_decay_interval_is_ordered_for_negative_lambda():
    rng = np.random.default_rng(4)
    n = np.arange(8)
    coefficients = (
        (-0.5) ** n
        * np.exp(0.05 * rng.standard_normal((4, 8)))
        * np.array([[1.0], [-2.0], [0.5], [3.0]])
    )
    fit = signed_decay(coefficients)
    assert fit.ci_low < fit.rate < fit.ci_high < 0
    assert fit.rate == pytest.approx(-0.5, abs=0.03)


def test_signed_decay_sign_follows_the_majority_of_step_ratios():
    n = np.arange(7)
    coefficients = (-0.5) ** n
    coefficients[3] *= -1  # flips the two ratios touching n = 3; four of six stay negative
    assert signed_decay(coefficients).rate < 0


@pytest.mark.parametrize(
    "call",
    [
        lambda: fit_decay(np.ones((2, 3)), np.arange(4)),  # distances length
        lambda: fit_decay(np.ones(3), np.array([0, 2, 1])),  # not increasing
        lambda: fit_decay(np.ones(3), np.arange(3), floor=0.0),
        lambda: fit_decay(np.ones(3), np.arange(3), level=1.5),
        lambda: signed_decay(np.ones(3), np.array([0, 2, 4])),  # not unit steps
        lambda: signed_decay(np.ones(3), relative_floor=2.0),
        lambda: student_t_quantile(0.95, 0),
    ],
)
def test_fits_reject_bad_input(call):
    with pytest.raises(ValueError):
        call()
