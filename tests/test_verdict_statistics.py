"""The statistics behind verdicts: one-sided t bounds over seeds, the minimal-heads decision on excess tables
whose answer is known by construction, and the power closed forms against scipy and exact arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from headshare.scoring.convergence import plateau_steps
from headshare.scoring.statistics import (
    MAX_SEEDS,
    model_se_target,
    power_statement,
    seed_mean,
    seeds_needed,
    sequences_needed,
)
from headshare.tasks.hmm.quantities import decide_heads

HEADS = np.array([1, 2, 3])
SEEDS = 5
MARGIN = 0.005  # half of 0.01 nats of stakes
SE = np.full((SEEDS, HEADS.size), 1e-5)  # per-model paired SE: far below every spread used here


def table(means, spread, rng_seed=0) -> np.ndarray:
    """(seed, n_heads) excess in nats: per-n_heads ``means`` plus each seed's own noise of SD ``spread``."""
    rng = np.random.default_rng(rng_seed)
    return np.asarray(means, dtype=float) + rng.normal(0.0, spread, (SEEDS, len(means)))


# ------------------------------------------------------------------------------ seed means


def test_seed_mean_bounds_are_the_one_sided_student_t_interval():
    differences = np.array([0.010, 0.012, 0.007, 0.011, 0.009])
    mean = seed_mean(differences)
    interval = stats.t.interval(0.90, 4, loc=differences.mean(), scale=stats.sem(differences))  # two 5% tails
    assert mean.n == 5 and mean.mean == pytest.approx(differences.mean())
    assert (mean.lower, mean.upper) == pytest.approx(interval)


def test_seed_mean_never_claims_less_noise_than_the_evaluation_carries():
    identical = np.full(4, 0.002)
    model_se = np.full((4, 2), 0.001)
    mean = seed_mean(identical, model_se)
    assert mean.se == pytest.approx(math.sqrt(8 * 0.001**2) / 4)
    assert mean.half_width == pytest.approx(stats.t.ppf(0.95, 3) * mean.se)


def test_one_seed_has_no_bound():
    mean = seed_mean(np.array([0.01]))
    assert math.isinf(mean.half_width) and mean.upper == math.inf and mean.lower == -math.inf


# ------------------------------------------------------------------------ minimal n_heads


def test_suffices_when_more_heads_gain_nothing():
    excess = table([0.003, 0.003, 0.003], spread=0.0003)
    decision = decide_heads(excess, HEADS, 1, MARGIN, SE)
    assert decision.verdict == "confirmed" and decision.observed == "minimal n_heads 1"
    assert decide_heads(excess, HEADS, 2, MARGIN, SE).verdict == "refuted"


def test_needed_when_one_fewer_head_is_clearly_worse():
    excess = table([0.020, 0.003, 0.003], spread=0.0003)  # one head loses 0.017 nats, above the margin
    assert decide_heads(excess, HEADS, 2, MARGIN, SE).verdict == "confirmed"
    one = decide_heads(excess, HEADS, 1, MARGIN, SE)
    assert one.verdict == "refuted" and one.reason.startswith("n_heads 1 does not suffice")
    three = decide_heads(excess, HEADS, 3, MARGIN, SE)
    assert three.verdict == "refuted" and three.reason.startswith("n_heads 2 suffices")


def test_three_heads_when_each_fewer_is_clearly_worse():
    excess = table([0.030, 0.015, 0.003], spread=0.0003)
    decision = decide_heads(excess, HEADS, 3, MARGIN, SE)
    assert decision.verdict == "confirmed" and decision.observed == "minimal n_heads 3"


def test_a_real_but_negligible_gain_still_suffices():
    """Two heads beat one by 0.001 nats in every seed: measurable, but within the margin of 0.005."""
    excess = table([0.004, 0.003, 0.003], spread=0.0001)
    assert decide_heads(excess, HEADS, 1, MARGIN, SE).verdict == "confirmed"
    assert decide_heads(excess, HEADS, 2, MARGIN, SE).verdict == "refuted"


def test_unresolved_when_the_seeds_spread_more_than_the_margin():
    excess = table([0.008, 0.003, 0.003], spread=0.004)  # gain 0.005 = the margin, seeds spread 0.004
    decision = decide_heads(excess, HEADS, 1, MARGIN, SE)
    assert decision.verdict == "unresolved" and decision.observed == "minimal n_heads <= 2"
    assert decision.reason.startswith("whether n_heads 1 suffices")


def test_needed_but_not_shown_sufficient_is_unresolved():
    """Two heads are better than one, but three might still gain more than the margin over two."""
    excess = np.array([[0.030, 0.015, 0.003], [0.031, 0.016, 0.014], [0.029, 0.014, 0.015],
                       [0.030, 0.015, 0.004], [0.030, 0.016, 0.016]])  # fmt: skip
    decision = decide_heads(excess, HEADS, 2, MARGIN, SE)
    assert decision.verdict == "unresolved" and "whether n_heads 2 suffices" in decision.reason


def test_curves_that_meet_give_one_head_at_the_meeting_point_and_more_before():
    """More heads learning faster: far apart early, equal on the plateau. Only the early table says 'more'."""
    early = table([0.050, 0.010, 0.008], spread=0.0005)
    met = table([0.003, 0.003, 0.003], spread=0.0003, rng_seed=1)
    assert decide_heads(early, HEADS, 1, MARGIN, SE).verdict == "refuted"
    assert decide_heads(met, HEADS, 1, MARGIN, SE).verdict == "confirmed"
    assert decide_heads(met, HEADS, 3, MARGIN, SE).verdict == "refuted"


@pytest.mark.parametrize(
    ("recording", "expected"),
    [
        (np.ones(12, dtype=bool), [9, 10, 11]),
        (np.array([True] * 9 + [False] * 3), [6, 7, 8]),  # a model stopped after nine evaluations
        (np.ones(5, dtype=bool), [3, 4]),  # a quarter of five rounds up to two
        (np.ones(1, dtype=bool), [0]),
        (np.zeros(4, dtype=bool), []),
    ],
)
def test_plateau_is_the_last_quarter_of_the_shared_evaluations(recording, expected):
    assert plateau_steps(recording).tolist() == expected


# ------------------------------------------------------------------------------ power


@pytest.mark.parametrize(("spread", "half_width"), [(0.01, 0.005), (0.003, 0.001), (0.02, 0.002)])
def test_seeds_needed_is_the_smallest_n_whose_t_bound_fits(spread, half_width):
    n = seeds_needed(spread, half_width)
    assert stats.t.ppf(0.95, n - 1) * spread / math.sqrt(n) <= half_width
    assert stats.t.ppf(0.95, n - 2) * spread / math.sqrt(n - 1) > half_width or n == 2


def test_seeds_needed_beyond_the_search_is_none():
    assert seeds_needed(1.0, 1e-6) is None and seeds_needed(0.0, 0.0) is None
    assert seeds_needed(1.0, stats.t.ppf(0.95, MAX_SEEDS - 1) / math.sqrt(MAX_SEEDS)) == MAX_SEEDS


@pytest.mark.parametrize(
    ("sequences", "se_now", "se_target", "expected"), [(8000, 3e-4, 1e-4, 72000), (10000, 2e-4, 2e-4, 10000)]
)
def test_sequences_needed_scales_as_the_inverse_square_of_the_se(sequences, se_now, se_target, expected):
    assert sequences_needed(sequences, se_now, se_target) == expected


def test_model_se_target_keeps_two_models_noise_within_the_mean_se():
    target = model_se_target(1e-4, 8)
    assert math.sqrt(2) * target / math.sqrt(8) == pytest.approx(1e-4)


def test_power_statement_against_its_closed_form():
    differences = np.array([0.0, 0.02, 0.005, 0.018, 0.001])
    mean = seed_mean(differences)
    statement = power_statement(0.02, mean, 0.005, 3e-4, 8000)
    sd = differences.std(ddof=1)
    n = next(n for n in range(2, 1000) if stats.t.ppf(0.95, n - 1) * sd / math.sqrt(n) <= 0.005)
    per_model = 0.005 / stats.t.ppf(0.95, 4) * math.sqrt(5 / 2)
    assert statement.startswith(f"stakes 0.02 nats; resolution now {stats.t.ppf(0.95, 4) * sd / math.sqrt(5):.2g}")
    assert (
        f"≈ {n} seeds at the current spread {sd:.2g} (SE of the seed mean ≤ {0.005 / stats.t.ppf(0.95, n - 1):.2g})"
        in statement
    )
    assert f"or paired SE ≤ {per_model:.2g} per model at 5 seeds (now 0.0003)" in statement
    assert statement.endswith("not enough alone: the seeds differ by more than their evaluation noise")


def test_power_statement_when_evaluation_noise_is_the_spread():
    model_se = np.full((3, 2), 0.01)
    mean = seed_mean(np.full(3, 0.0003), model_se)  # identical seeds: all the uncertainty is evaluation noise
    statement = power_statement(0.02, mean, 0.005, 0.01, 8000)
    per_model = model_se_target(0.005 / stats.t.ppf(0.95, 2), 3)
    assert (
        f"paired SE ≤ {per_model:.2g} per model at 3 seeds (≈ {math.ceil(8000 * (0.01 / per_model) ** 2):,} evaluation sequences, now 8,000)"
        in statement
    )
    assert "not enough alone" not in statement


def test_power_statement_with_one_seed_asks_for_two():
    assert power_statement(0.02, seed_mean(np.array([0.01])), 0.005, 1e-4, 8000).endswith(
        "needs at least 2 converged seeds to measure the spread between them"
    )
