"""Attention as a function of distance, and the decay rate fitted to it.

The belief-geometry prediction is that attention from destination d to source s falls like
``lambda ** (d - s)``. This module turns causal attention patterns into curves a(n) over the
distance n = d - s and fits ``log a(n) = c + n log r``.

Conventions shared by the fits:
- Distance 0 is never informative about the rate (the residual stream already holds the
  current token), so fits start at ``min_distance`` (1 by default).
- Each curve is fitted on its *contiguous run* of usable points: from the first distance
  >= ``min_distance`` up to, not including, the first point that is non-finite or below the
  floor. Dropping isolated low points instead would keep the few far points that noise
  lifted above the floor and bias the rate upwards.
- The default attention floor is 1e-4: well above float32 softmax round-off (~1e-7) and
  noise from finite samples, and well below the smallest weights the fits rely on (a rate
  of 0.3 reaches 1e-4 only after ~8 steps).
- Uncertainty comes from the spread over K independent curves (per query position, per
  seed): a t-interval on the per-curve fitted log-slopes, exact and seed-free. With a single
  curve the interval is the ordinary least-squares t-interval on its slope instead. Curves
  from different query positions of one model share their sequences, so an interval over
  them understates the spread between seeds.
"""

from dataclasses import dataclass

import numpy as np

DEFAULT_ATTENTION_FLOOR = 1e-4
DEFAULT_RELATIVE_FLOOR = 1e-3


@dataclass(frozen=True)
class AttentionByDistance:
    """Mean attention weight per head as a function of distance n = query - key.

    ``...`` stands for any leading axes of the pattern before the sequence axis.
    """

    mean: np.ndarray  # (..., H, D) mean over all (query, key) pairs at distance n
    count: np.ndarray  # (D,) number of (query, key) pairs per sequence at distance n: T - n
    per_query: np.ndarray  # (..., H, T, D) curve seen from each query position; NaN where n > q
    last: np.ndarray  # (..., H, D) the curve seen from the last query position

    @property
    def distances(self) -> np.ndarray:
        """The distances 0..T-1 indexing the last axis."""
        return np.arange(self.count.shape[0])


@dataclass(frozen=True)
class DecayFit:
    """Fitted per-step decay rate r with its confidence interval.

    ``log_intercept`` is the mean fitted c (log a at distance 0), ``r2`` the mean over
    curves of each curve's R^2 in log space (how geometric each curve is), ``n`` the number
    of curves that had at least two usable points. All fields are NaN (and n = 0) when no
    curve had two usable points.
    """

    rate: float
    ci_low: float
    ci_high: float
    log_intercept: float
    r2: float
    n: int


@dataclass(frozen=True)
class ParityDecayFit:
    """Separate fits on even and on odd distances; each rate is per unit of distance."""

    even: DecayFit
    odd: DecayFit


def attention_by_distance(
    pattern: np.ndarray, weights: np.ndarray | None = None
) -> AttentionByDistance:
    """Average causal attention over sequences, then read it off by distance.

    ``pattern`` is (..., N, H, T, T) with query on axis -2 and key on axis -1, as
    ``hook_pattern``. ``weights`` are per-sequence probabilities, shape (N,) or (..., N)
    (normalised here); None weights sequences equally. Every (query, key) pair at a distance
    counts once in ``mean``, so near distances average over more query positions.
    """
    pattern = np.asarray(pattern, dtype=np.float64)
    if pattern.ndim < 4 or pattern.shape[-1] != pattern.shape[-2]:
        raise ValueError(
            "pattern must have shape (..., N, H, T, T) with equal query and key lengths, "
            f"got {pattern.shape}"
        )
    if not np.all(np.isfinite(pattern)) or pattern.min() < 0:
        raise ValueError("pattern must hold finite attention weights >= 0")
    n_seq, length = pattern.shape[-4], pattern.shape[-1]
    mean_pattern = np.einsum("...nhqk,...n->...hqk", pattern, _sequence_weights(weights, pattern))

    query = np.arange(length)[:, None]
    key = query - np.arange(length)[None, :]  # (T query, D distance)
    causal = key >= 0
    per_query = np.where(causal, mean_pattern[..., query, np.maximum(key, 0)], np.nan)
    count = length - np.arange(length)
    return AttentionByDistance(
        mean=np.nansum(per_query, axis=-2) / count,
        count=count,
        per_query=per_query,
        last=per_query[..., -1, :],
    )


def _sequence_weights(weights: np.ndarray | None, pattern: np.ndarray) -> np.ndarray:
    """Weights over the sequence axis normalised to sum to 1, shaped to broadcast."""
    batch_shape = pattern.shape[:-3]
    if weights is None:
        return np.full(batch_shape, 1.0 / batch_shape[-1])
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape not in {batch_shape[-1:], batch_shape}:
        raise ValueError(
            f"weights must have shape {batch_shape[-1:]} or {batch_shape}, got {weights.shape}"
        )
    if not np.all(np.isfinite(weights)) or weights.min() < 0:
        raise ValueError("weights must be finite and >= 0")
    total = weights.sum(axis=-1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("weights must have a positive sum over sequences")
    return np.broadcast_to(weights / total, batch_shape)


def fit_decay(
    curves: np.ndarray,
    distances: np.ndarray,
    *,
    min_distance: int = 1,
    floor: float = DEFAULT_ATTENTION_FLOOR,
    level: float = 0.95,
) -> DecayFit:
    """Fit a(n) ~ exp(c) r^n to K positive curves, shape (K, D) or (D,), at ``distances``."""
    curves, distances = _check_curves(curves, distances)
    if floor <= 0:
        raise ValueError(f"floor must be > 0, got {floor}")
    usable = _contiguous_run(curves >= floor, distances, min_distance)
    return _fit_log_linear(np.log(np.where(usable, curves, 1.0)), distances, usable, level)


def fit_decay_by_parity(
    curves: np.ndarray,
    distances: np.ndarray,
    *,
    min_distance: int = 1,
    floor: float = DEFAULT_ATTENTION_FLOOR,
    level: float = 0.95,
) -> ParityDecayFit:
    """Fit even and odd distances separately, for the sign pattern of a negative lambda.

    Each rate is exp(slope) per unit of distance over that parity's subsequence, so a
    curve |lambda|^n on even n and 0 on odd n gives even.rate = |lambda| and no odd fit.
    """
    curves, distances = _check_curves(curves, distances)
    fits = [
        fit_decay(
            curves[:, distances % 2 == parity],
            distances[distances % 2 == parity],
            min_distance=min_distance,
            floor=floor,
            level=level,
        )
        for parity in (0, 1)
    ]
    return ParityDecayFit(even=fits[0], odd=fits[1])


def signed_decay(
    coefficients: np.ndarray,
    distances: np.ndarray | None = None,
    *,
    min_distance: int = 0,
    relative_floor: float = DEFAULT_RELATIVE_FLOOR,
    level: float = 0.95,
) -> DecayFit:
    """Recover a signed lambda from sequences c_n ~ C lambda^n, shape (K, D) or (D,).

    |lambda| is the log-linear fit to |c_n|; its sign is the majority sign of the ratios
    c_{n+1} / c_n over consecutive usable points of all curves (a tie counts as positive).
    The floor is relative, ``relative_floor`` times each curve's largest |c_n| at distances
    >= ``min_distance``, because such coefficients carry no natural scale. ``distances``
    default to 0..D-1 and must step by exactly 1 so that consecutive ratios are one step.
    """
    coefficients = np.atleast_2d(np.asarray(coefficients, dtype=np.float64))
    if distances is None:
        distances = np.arange(coefficients.shape[-1])
    coefficients, distances = _check_curves(coefficients, distances)
    if np.any(np.diff(distances) != 1):
        raise ValueError(f"distances must step by exactly 1, got {distances}")
    if not 0 < relative_floor < 1:
        raise ValueError(f"relative_floor must lie in (0, 1), got {relative_floor}")
    magnitude = np.abs(coefficients)
    in_range = (distances >= min_distance) & np.isfinite(magnitude)
    scale = np.max(np.where(in_range, magnitude, 0.0), axis=1, keepdims=True)
    usable = _contiguous_run(magnitude >= relative_floor * scale, distances, min_distance)
    usable &= scale > 0
    fit = _fit_log_linear(np.log(np.where(usable, magnitude, 1.0)), distances, usable, level)

    both = usable[:, 1:] & usable[:, :-1]
    step_signs = np.sign(coefficients[:, 1:] * coefficients[:, :-1])[both]
    if fit.n == 0 or step_signs.sum() >= 0:
        return fit
    return DecayFit(
        rate=-fit.rate,
        ci_low=-fit.ci_high,
        ci_high=-fit.ci_low,
        log_intercept=fit.log_intercept,
        r2=fit.r2,
        n=fit.n,
    )


def geometric_mean(ratios: np.ndarray) -> np.ndarray:
    """Geometric mean over the last axis of the positive finite entries, NaN where there are none.

    Summarises a per-step decay ratio r(n) (such as the exact filter's effective decay) as one
    rate; steps where the ratio is undefined or not positive carry no rate and are left out.
    """
    ratios = np.asarray(ratios, dtype=np.float64)
    usable = np.isfinite(ratios) & (ratios > 0)
    logs = np.log(np.where(usable, ratios, 1.0))  # unusable steps add log 1 = 0
    count = usable.sum(axis=-1)
    return np.where(count > 0, np.exp(logs.sum(axis=-1) / np.maximum(count, 1)), np.nan)


def parity_contrast(curves: np.ndarray, floor: float = DEFAULT_ATTENTION_FLOOR) -> np.ndarray:
    """How strongly attention favours one parity of the distance, in nats: > 0 even, < 0 odd.

    ``curves`` is (..., D) over distances 0..D-1. With z(n) = log a(n) - (log a(n-1) + log a(n+1)) / 2,
    the departure from the geometric mean of the neighbours (zero for any geometric decay, so the rate
    does not leak in), the contrast is the mean of (-1)^n z(n) over 2 <= n <= D-2 (distance 0 is
    unidentifiable). Values are clipped at ``floor`` so that a parity getting no attention at all still
    counts, and triples whose outer points lie on opposite sides of the floor (a decay running into it,
    not a parity pattern) or that lie wholly below it are skipped. For a(n) = c r^n rho^[n even] above
    the floor it is exactly log rho. NaN without a usable triple.
    """
    curves = np.asarray(curves, dtype=np.float64)
    n = np.arange(2, curves.shape[-1] - 1)
    logs = np.log(np.maximum(curves, floor))
    z = logs[..., n] - 0.5 * (logs[..., n - 1] + logs[..., n + 1])
    above = curves > floor  # False for NaN
    outer_above = above[..., n - 1]
    informative = (outer_above == above[..., n + 1]) & (outer_above | above[..., n])
    count = informative.sum(axis=-1)
    total = np.where(informative, (-1.0) ** n * z, 0.0).sum(axis=-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _check_curves(curves: np.ndarray, distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Curves as (K, D) float64 and distances as strictly increasing (D,) integers."""
    curves = np.atleast_2d(np.asarray(curves, dtype=np.float64))
    distances = np.asarray(distances)
    if curves.ndim != 2:
        raise ValueError(f"curves must have shape (K, D) or (D,), got {curves.shape}")
    if distances.shape != curves.shape[-1:]:
        raise ValueError(
            f"distances must have shape ({curves.shape[-1]},) to match curves, "
            f"got {distances.shape}"
        )
    if not np.issubdtype(distances.dtype, np.integer) or np.any(np.diff(distances) <= 0):
        raise ValueError(f"distances must be strictly increasing integers, got {distances}")
    return curves, distances


def _contiguous_run(ok: np.ndarray, distances: np.ndarray, min_distance: int) -> np.ndarray:
    """Points from ``min_distance`` on, up to the first one that is not ``ok``."""
    in_range = distances >= min_distance
    # NaN compares False, so a non-finite point ends the run as well.
    return in_range & (np.cumprod(ok | ~in_range, axis=-1) == 1)


def _fit_log_linear(
    log_values: np.ndarray, distances: np.ndarray, usable: np.ndarray, level: float
) -> DecayFit:
    """Per-curve least squares of log a on n over the usable points, pooled into one fit."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    n_points = usable.sum(axis=1)
    fitted = n_points >= 2
    n_curves = int(fitted.sum())
    if n_curves == 0:
        return DecayFit(np.nan, np.nan, np.nan, np.nan, np.nan, 0)
    mask = usable[fitted].astype(np.float64)
    y = log_values[fitted]
    m = n_points[fitted]
    x = distances.astype(np.float64)
    x_mean = (mask * x).sum(axis=1) / m
    y_mean = (mask * y).sum(axis=1) / m
    dx = (x - x_mean[:, None]) * mask
    dy = (y - y_mean[:, None]) * mask
    sxx = (dx**2).sum(axis=1)
    slopes = (dx * dy).sum(axis=1) / sxx
    intercepts = y_mean - slopes * x_mean
    ss_res = ((dy - slopes[:, None] * dx) ** 2).sum(axis=1)
    ss_tot = (dy**2).sum(axis=1)
    r2 = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), 1.0)

    slope = float(slopes.mean())
    if n_curves >= 2:
        dof = n_curves - 1
        standard_error = float(slopes.std(ddof=1)) / np.sqrt(n_curves)
    else:
        dof = int(m[0]) - 2
        standard_error = np.sqrt(ss_res[0] / dof / sxx[0]) if dof > 0 else np.nan
    half_width = student_t_quantile(level, dof) * standard_error if dof > 0 else np.nan
    return DecayFit(
        rate=float(np.exp(slope)),
        ci_low=float(np.exp(slope - half_width)),
        ci_high=float(np.exp(slope + half_width)),
        log_intercept=float(intercepts.mean()),
        r2=float(r2.mean()),
        n=n_curves,
    )


def student_t_quantile(level: float, dof: int) -> float:
    """Half-width multiplier t with P(|T| <= t) = ``level`` for Student's t with ``dof``.

    Inverts the closed-form coverage for integer degrees of freedom (Abramowitz & Stegun
    26.7.3-4) by bisection on theta = arctan(t / sqrt(dof)), where it is monotone.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if dof < 1:
        raise ValueError(f"dof must be >= 1, got {dof}")
    low, high = 0.0, np.pi / 2
    for _ in range(100):
        theta = 0.5 * (low + high)
        if _t_coverage(theta, dof) < level:
            low = theta
        else:
            high = theta
    return float(np.sqrt(dof) * np.tan(0.5 * (low + high)))


def _t_coverage(theta: float, dof: int) -> float:
    """P(|T| <= sqrt(dof) tan(theta)) for Student's t with integer ``dof``."""
    cos2 = np.cos(theta) ** 2
    if dof % 2 == 1:
        k = np.arange(1, (dof - 1) // 2)
        series = 1.0 + np.sum(np.cumprod(2 * k / (2 * k + 1)) * cos2**k)
        tail = np.sin(theta) * np.cos(theta) * series if dof > 1 else 0.0
        return float(2.0 / np.pi * (theta + tail))
    k = np.arange(1, dof // 2)
    return float(np.sin(theta) * (1.0 + np.sum(np.cumprod((2 * k - 1) / (2 * k)) * cos2**k)))
