"""The convergence test on synthetic evaluation curves with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from headshare.analysis.convergence import MIN_WINDOW, convergence, window_size

STEPS = np.arange(1, 41) * 100.0
TOLERANCE = 1e-3


def noisy(curve: np.ndarray, sd: float, seed: int = 0) -> np.ndarray:
    return curve + np.random.default_rng(seed).normal(0, sd, curve.shape)


def test_a_plateau_with_noise_has_converged():
    result = convergence(STEPS, noisy(np.full(40, 0.02), 2e-4), np.full(40, 2e-4), TOLERANCE)
    assert result.converged
    assert result.plateau == pytest.approx(0.02, abs=2e-4)
    assert result.window_start == STEPS[-window_size(40)]


def test_a_slow_power_law_decline_has_not_converged():
    # excess = 0.05 * (step / 100)^(-1/2): it falls by 0.05 * (1 - 2^-1/2) * step^-1/2 per doubling, ~0.0023 at 3000
    curve = 0.05 * (STEPS / 100) ** -0.5
    assert not convergence(STEPS, curve, np.full(40, 1e-5), TOLERANCE).converged


def test_the_fall_per_doubling_matches_a_log_linear_curve_exactly():
    # metric = c - b log2(step): the fall per doubling is b; with no noise the CI collapses onto it
    curve = 0.3 - 0.0025 * np.log2(STEPS)
    result = convergence(STEPS, curve + 0.0, np.zeros(40), TOLERANCE)
    assert result.fall_per_doubling == pytest.approx(0.0025, rel=1e-9)
    assert not result.converged
    assert convergence(STEPS, curve, np.zeros(40), 0.003).converged


def test_the_upper_bound_is_the_t_interval_of_the_slope():
    values = noisy(np.full(40, 0.01), 1e-3, seed=3)
    size = window_size(40)
    fit = stats.linregress(np.log2(STEPS[-size:]), values[-size:])
    expected = -fit.slope + stats.t.ppf(0.95, size - 2) * fit.stderr
    assert convergence(STEPS, values, np.full(40, 1e-3), TOLERANCE).fall_per_doubling == pytest.approx(expected)


def test_noise_alone_too_large_to_tell_is_not_converged():
    values = noisy(np.full(40, 0.01), 5e-2, seed=1)
    assert not convergence(STEPS, values, np.full(40, 5e-2), TOLERANCE).converged


def test_too_few_evaluations_cannot_converge():
    few = STEPS[: MIN_WINDOW - 1]
    result = convergence(few, np.full(len(few), 0.1), np.zeros(len(few)), TOLERANCE)
    assert not result.converged and np.isnan(result.fall_per_doubling)


@pytest.mark.parametrize(
    "steps, tolerance, message",
    [(np.array([2.0, 1.0, 3.0, 4.0]), 1e-3, "increasing"), (STEPS, 0.0, "tolerance")],
)
def test_bad_input_is_rejected(steps, tolerance, message):
    with pytest.raises(ValueError, match=message):
        convergence(steps, np.zeros(len(steps)), np.zeros(len(steps)), tolerance)
