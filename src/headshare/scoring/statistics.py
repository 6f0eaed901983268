"""Confidence bounds over seeds and the closed forms that say how much more data would decide a comparison.

Verdicts that compare models (minimal_heads) rest on one-sided 95% Student-t bounds of a mean over seeds of
paired differences (the same seed's models, evaluated on the same sequences). The standard error is the
between-seed one, sd / sqrt(n) with n - 1 degrees of freedom: it holds both what differs between training
runs and the evaluation noise of each model. It is never taken below the evaluation noise that the per-model
paired SEs alone imply, so seeds that happen to agree more closely than their own evaluation noise allows do
not pass for certainty. The power closed forms invert these bounds: more seeds shrink the SE of the mean as
1 / sqrt(n) (and the t quantile with them); more evaluation sequences shrink each model's paired SE as
1 / sqrt(sequences).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95  # one-sided confidence of every bound
MAX_SEEDS = 10_000  # the seed count searched for a power statement; beyond it the answer is "more than this"


@dataclass(frozen=True)
class SeedMean:
    """The mean over n seeds of paired differences, its standard error and its one-sided 95% half-width."""

    mean: float
    se: float
    n: int

    @property
    def half_width(self) -> float:
        """t(0.95, n - 1) x se; infinite with fewer than two seeds (no spread to measure)."""
        return t_quantile(self.n) * self.se if self.n >= 2 else math.inf

    @property
    def upper(self) -> float:
        return self.mean + self.half_width

    @property
    def lower(self) -> float:
        return self.mean - self.half_width

    @property
    def spread(self) -> float:
        """The per-seed standard deviation behind ``se`` (se x sqrt(n)), what more seeds average down."""
        return self.se * math.sqrt(self.n)


def t_quantile(n_seeds: int) -> float:
    """The one-sided 95% Student-t quantile for a mean over ``n_seeds`` (n - 1 degrees of freedom)."""
    return float(stats.t.ppf(LEVEL, n_seeds - 1))


def seed_mean(differences: np.ndarray, model_se: np.ndarray | None = None) -> SeedMean:
    """Mean of per-seed paired ``differences`` with SE = max(between-seed sd / sqrt(n), evaluation floor).

    ``model_se`` (same shape, or (n, 2) for the two models of each difference) are the per-model paired SEs;
    the floor sqrt(sum of their squares) / n is the SE the mean would have from evaluation noise alone,
    taking the two models' errors as independent (conservative: they share their sequences)."""
    differences = np.asarray(differences, dtype=np.float64).ravel()
    n = differences.size
    if n == 0:
        return SeedMean(math.nan, math.inf, 0)
    between = float(differences.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
    floor = 0.0 if model_se is None else float(np.sqrt(np.sum(np.square(model_se)))) / n
    return SeedMean(float(differences.mean()), max(between, floor), n)


def seeds_needed(spread: float, half_width: float) -> int | None:
    """The smallest seed count n >= 2 with t(0.95, n - 1) x spread / sqrt(n) <= ``half_width``, at the current
    per-seed ``spread``; None when even :data:`MAX_SEEDS` would not do."""
    if not half_width > 0:
        return None
    n = np.arange(2, MAX_SEEDS + 1)
    enough = stats.t.ppf(LEVEL, n - 1) * spread / np.sqrt(n) <= half_width
    return int(n[np.argmax(enough)]) if enough.any() else None


def sequences_needed(sequences: int, se_now: float, se_target: float) -> int:
    """Evaluation sequences that bring a paired SE from ``se_now`` (with ``sequences``) to ``se_target``:
    SE scales as 1 / sqrt(sequences), so sequences x (se_now / se_target)^2, rounded up."""
    return math.ceil(sequences * (se_now / se_target) ** 2)


def model_se_target(mean_se_target: float, n_seeds: int) -> float:
    """The per-model paired SE at which evaluation noise alone keeps the SE of a mean over ``n_seeds`` paired
    differences within ``mean_se_target``: each difference carries two models' noise, sqrt(2) x SE, and the
    mean divides it by sqrt(n), so mean_se_target x sqrt(n / 2)."""
    return mean_se_target * math.sqrt(n_seeds / 2)


def power_statement(stakes: float, mean: SeedMean, target: float, model_se: float, sequences: int) -> str:
    """What would bring the one-sided half-width of ``mean`` down to ``target`` nats. Two routes: more seeds
    at the current per-seed spread; or, at the current seeds, a per-model paired SE (and the evaluation
    sequences it takes) whose evaluation noise alone fits - which is enough only when the seeds differ by
    little more than their evaluation noise (the rest of the spread, sqrt(spread^2 - 2 SE^2), is training)."""
    now = f"stakes {stakes:.2g} nats; resolution now {mean.half_width:.2g} nats ({mean.n} seeds)"
    if mean.n < 2:
        return f"{now}: needs at least 2 converged seeds to measure the spread between them"
    seeds = seeds_needed(mean.spread, target)
    by_seeds = (
        f"≈ {seeds} seeds at the current spread {mean.spread:.2g} (SE of the seed mean ≤ {target / t_quantile(seeds):.2g})"
        if seeds is not None
        else f"more than {MAX_SEEDS} seeds at the current spread {mean.spread:.2g}"
    )
    per_model = model_se_target(target / t_quantile(mean.n), mean.n)
    more = sequences_needed(sequences, model_se, per_model)
    by_data = f"paired SE ≤ {per_model:.2g} per model at {mean.n} seeds " + (
        f"(≈ {more:,} evaluation sequences, now {sequences:,})" if more > sequences else f"(now {model_se:.2g})"
    )
    training_spread = math.sqrt(max(mean.spread**2 - 2 * model_se**2, 0.0))
    if t_quantile(mean.n) * training_spread / math.sqrt(mean.n) >= target:
        by_data += ", not enough alone: the seeds differ by more than their evaluation noise"
    return f"{now}; needs resolution {target:.2g}: {by_seeds}, or {by_data}"


def proportion_interval(successes: int, trials: int) -> tuple[float, float]:
    """Two-sided 95% Clopper-Pearson interval of a proportion (scipy's exact binomial test)."""
    interval = stats.binomtest(successes, trials).proportion_ci(confidence_level=LEVEL, method="exact")
    return float(interval.low), float(interval.high)


def trials_to_separate(rate: float, threshold: float) -> int | None:
    """The fewest trials at which an observed ``rate`` (kept as round(rate x n) successes) would give a 95%
    interval excluding ``threshold``; None beyond MAX_SEEDS or when the rate is the threshold."""
    for trials in range(2, MAX_SEEDS + 1):
        low, high = proportion_interval(round(rate * trials), trials)
        if low > threshold or high < threshold:
            return trials
    return None
