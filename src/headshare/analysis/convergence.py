"""Has a model stopped learning? A test on its held-out evaluation curve.

The test looks at the last quarter of the evaluations (at least ``MIN_WINDOW`` of them) and fits the
metric against log2(step) by least squares, so the slope is the change per doubling of the steps trained.
The model has converged when the one-sided 95% upper confidence bound of the fall the fit implies over one
more doubling is at most ``tolerance`` (in the metric's units): another doubling of training would not
move the metric by more than the verdicts can resolve. A rising or flat curve passes; a curve still falling
faster than the tolerance, or too short to tell, does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

MIN_WINDOW = 4  # evaluations in the window: a slope and its CI need a few points
WINDOW_FRACTION = 0.25  # the last quarter of the evaluations
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Convergence:
    """The test's outcome on one curve. ``plateau`` is the metric's mean over the window and ``plateau_se``
    the root-mean-square of the evaluations' own standard errors there (the evaluation batch is fixed, so
    its sampling error does not average out across evaluations)."""

    converged: bool
    fall_per_doubling: float  # one-sided upper confidence bound; NaN when the window is too short
    plateau: float
    plateau_se: float
    window_start: int  # the first step inside the window


def window_size(n_evaluations: int) -> int:
    """Evaluations in the convergence window: the last quarter, at least MIN_WINDOW (or all there are)."""
    return min(n_evaluations, max(MIN_WINDOW, int(np.ceil(WINDOW_FRACTION * n_evaluations))))


def convergence(steps: np.ndarray, values: np.ndarray, errors: np.ndarray, tolerance: float) -> Convergence:
    """Apply the convergence test to one evaluation curve (``values`` with standard errors ``errors`` at
    ``steps``, steps > 0 and increasing)."""
    steps, values, errors = (np.asarray(x, dtype=np.float64) for x in (steps, values, errors))
    if not tolerance > 0:
        raise ValueError(f"tolerance must be > 0, got {tolerance}")
    if steps.shape != values.shape or steps.shape != errors.shape or steps.ndim != 1:
        raise ValueError(f"steps, values and errors must be 1-d of one length, got {steps.shape}, {values.shape}, {errors.shape}")
    if np.any(steps <= 0) or np.any(np.diff(steps) <= 0):
        raise ValueError("steps must be positive and increasing")
    size = window_size(len(steps))
    if size == 0:
        return Convergence(False, np.nan, np.nan, np.nan, 0)
    window = slice(len(steps) - size, None)
    plateau = float(np.mean(values[window]))
    plateau_se = float(np.sqrt(np.mean(errors[window] ** 2)))
    start = int(steps[window][0])
    if size < MIN_WINDOW or not np.all(np.isfinite(values[window])):
        return Convergence(False, np.nan, plateau, plateau_se, start)
    if np.ptp(values[window]) == 0:  # a perfectly flat window: linregress's correlation would be 0/0
        slope, slope_se = 0.0, 0.0
    else:
        fit = stats.linregress(np.log2(steps[window]), values[window])
        slope, slope_se = fit.slope, fit.stderr
    upper = -slope + stats.t.ppf(CONFIDENCE, size - 2) * slope_se
    return Convergence(bool(upper <= tolerance), float(upper), plateau, plateau_se, start)
