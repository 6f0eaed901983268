"""The scorer on hand-built stores whose verdicts are known by construction: every verdict branch is reached."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from helpers.paths import PROJECT_ROOT
from helpers.synthetic import synthetic_regression_store
from helpers.scoring_stores import (
    DISTANCES,
    EVAL_SEQUENCES,
    EVAL_STEPS,
    document,
    entry,
    geometric,
    hmm_store,
    only_row,
    parity_head,
    readoff_store,
    regression_store,
    scored,
    set_excess,
    set_nats,
    set_rates,
)
from scipy import stats

from headshare.analysis.decay import geometric_mean, parity_contrast
from headshare.predictions import load_predictions
from headshare.scoring import (
    COLUMNS,
    VERDICTS,
    Rule,
    quantities,
    score,
    verdict_rules_markdown,
    write_scores,
)
from headshare.store import ArtifactError

MINIMAL_ONE = entry("minimal_heads", {"condition": "c"}, "==", 1)
MINIMAL_TWO = entry("minimal_heads", {"condition": "c"}, "==", 2)
MINIMAL_THREE = entry("minimal_heads", {"condition": "c"}, "==", 3)
FIVE_SEEDS = tuple(range(5))
# Five seeds in nats (n_heads 1, 2, 3): one head loses ~0.027 nats, two and three heads are equal to ~1e-4.
NEEDS_TWO = [
    [0.0300, 0.0030, 0.0031],
    [0.0280, 0.0032, 0.0030],
    [0.0310, 0.0029, 0.0030],
    [0.0290, 0.0031, 0.0032],
    [0.0300, 0.0030, 0.0029],
]


# ------------------------------------------------------------------------ the rule's comparisons


@pytest.mark.parametrize(
    ("op", "value", "tolerance", "observed", "expected"),
    [
        ("==", 1.0, 0.05, 1.04, True),
        ("==", 1.0, 0.05, 1.06, False),
        ("!=", 1.0, 0.05, 1.04, False),
        ("!=", 1.0, 0.05, 1.06, True),
        ("<=", 0.5, 0.1, 0.59, True),
        ("<=", 0.5, 0.1, 0.61, False),
        ("<", 0.5, 0.1, 0.41, False),
        ("<", 0.5, 0.1, 0.39, True),
        (">=", 0.99, 0.0, 0.99, True),
        (">=", 1.0, 0.001, 0.9985, False),
        (">", 1.0, 0.05, 1.04, False),
        (">", 1.0, 0.05, 1.06, True),
    ],
)
def test_rule_comparison_sides_with_the_tolerance(op, value, tolerance, observed, expected):
    rule = Rule(op, value, tolerance, 0.5, 2.0, 0.5, 0.2, 3.0, 0.9)
    assert rule.holds(observed) is expected


# ------------------------------------------------------------------------------- minimal_heads


def test_minimal_heads_one_head_within_margin_of_the_best_is_confirmed():
    store = set_excess(hmm_store(), [0.015, 0.010, 0.012])  # 1 head loses 0.0015 nats: margin 0.5 x 0.02
    table = scored(store, MINIMAL_ONE, MINIMAL_TWO | {"id": "two"})
    assert list(table["verdict"]) == ["confirmed", "refuted"]
    assert list(table["agreement"]) == ["3/3 seeds", "3/3 seeds"]
    assert table["observed"].iloc[0].startswith("minimal n_heads 1 over 3 seeds")
    assert "n_heads 1 suffices" in table["reason"].iloc[1]
    assert "[stakes 0.02 nats, margin 0.01 nats]" in table["predicted"].iloc[0]
    assert table["condition"].iloc[0] == "c (n_layers=1, d_head=8, a=0.85, loss=all, n_heads=1,2,3)"


def test_minimal_heads_refuted_when_one_head_falls_short():
    store = set_excess(hmm_store(), [0.10, 0.010, 0.011])
    table = scored(store, MINIMAL_ONE, MINIMAL_TWO | {"id": "two"})
    assert list(table["verdict"]) == ["refuted", "confirmed"]
    assert "n_heads 1 does not suffice" in table["reason"].iloc[0]
    assert table["observed"].iloc[1].startswith("minimal n_heads 2")


def test_minimal_heads_across_five_seeds_needs_two_heads():
    """Known by construction: one head loses 0.027 nats in every seed, a third head gains nothing."""
    store = set_nats(hmm_store(seeds=FIVE_SEEDS), NEEDS_TWO)
    table = scored(store, MINIMAL_ONE, MINIMAL_TWO | {"id": "two"}, MINIMAL_THREE | {"id": "three"})
    assert list(table["verdict"]) == ["refuted", "confirmed", "refuted"]
    assert list(table["agreement"]) == ["5/5 seeds", "5/5 seeds", "5/5 seeds"]
    assert "n_heads 2 suffices" in table["reason"].iloc[2]
    assert (table["power"] == "").all()


def test_minimal_heads_unresolved_states_its_power_from_the_closed_forms():
    gaps = np.array([0.0, 0.02, 0.005, 0.018, 0.001])  # one head against two: mean 0.0088, margin 0.01
    store = set_nats(hmm_store(seeds=FIVE_SEEDS), np.column_stack([0.003 + gaps, np.full(5, 0.003), np.full(5, 0.0031)]))
    row = only_row(scored(store, MINIMAL_ONE))
    assert row["verdict"] == "inconclusive" and "below what the measurement resolves" in row["reason"]
    assert row["agreement"] == "3/5 seeds confirmed"  # seeds 0, 2, 4 alone would need one head
    sd, target = gaps.std(ddof=1), 0.5 * 0.01
    n = np.arange(2, 1000)
    seeds = int(n[np.argmax(stats.t.ppf(0.95, n - 1) * sd / np.sqrt(n) <= target)])
    half_width = stats.t.ppf(0.95, 4) * sd / np.sqrt(5)
    assert row["power"].startswith(f"stakes 0.02 nats; resolution now {half_width:.2g} nats (5 seeds)")
    assert f"needs resolution {target:.2g}: ≈ {seeds} seeds at the current spread {sd:.2g}" in row["power"]
    assert "not enough alone: the seeds differ by more than their evaluation noise" in row["power"]


def test_minimal_heads_unconverged_seeds_cannot_decide():
    store = set_nats(hmm_store(seeds=FIVE_SEEDS), NEEDS_TWO)
    store["converged"].loc[{"seed": [0, 1, 2], "n_heads": 3}] = 0.0
    row = only_row(scored(store, MINIMAL_TWO))
    assert row["verdict"] == "inconclusive"
    assert row["reason"].startswith("not converged (3/5 seeds): the convergence test failed within 1200 steps")
    assert row["power"] == "not converged in 1200 steps: needs longer training (raise max_steps)"
    assert row["agreement"] == "2/5 seeds confirmed"


def test_minimal_heads_decides_on_the_converged_majority():
    store = set_nats(hmm_store(seeds=FIVE_SEEDS), NEEDS_TWO)
    store["converged"].loc[{"seed": 4, "n_heads": 1}] = 0.0
    row = only_row(scored(store, MINIMAL_TWO))
    assert row["verdict"] == "confirmed" and row["agreement"] == "4/5 seeds"
    assert row["observed"].startswith("minimal n_heads 2 over 4 seeds")


def test_unconverged_few_head_models_never_show_that_more_heads_are_needed():
    """The trap: one-head models stopped at max_steps still learning look worse than three heads."""
    store = set_nats(hmm_store(seeds=FIVE_SEEDS), NEEDS_TWO)
    store["converged"].loc[{"n_heads": 1}] = 0.0
    table = scored(store, MINIMAL_ONE, MINIMAL_TWO | {"id": "two"})
    assert list(table["verdict"]) == ["inconclusive", "inconclusive"]
    assert table["reason"].str.startswith("not converged (5/5 seeds)").all()


def learning_curves(store: xr.Dataset, early: float, meets_at: int) -> xr.Dataset:
    """One-head models lose ``early`` nats more than the others until evaluation ``meets_at``, then match them."""
    lag = xr.DataArray(np.where(np.arange(EVAL_STEPS.size) < meets_at, early, 0.0), dims="eval_step")
    one_head = store["eval_metric"].loc[{"n_heads": 1}]
    store["eval_metric"].loc[{"n_heads": 1}] = one_head + lag.assign_coords(eval_step=EVAL_STEPS)
    return store


def test_more_heads_learning_faster_does_not_make_them_needed():
    """Curves that differ early but meet on the plateau: one head suffices, as at the end of training."""
    store = set_excess(hmm_store(seeds=FIVE_SEEDS), [0.010, 0.010, 0.010])
    store = learning_curves(store, early=0.05, meets_at=EVAL_STEPS.size - 3)  # the last three are the plateau
    row = only_row(scored(store, MINIMAL_ONE))
    assert row["verdict"] == "confirmed" and row["agreement"] == "5/5 seeds"


def test_minimal_heads_flipping_within_the_plateau_is_inconclusive():
    """One head matches at the end but was clearly worse at the plateau's first evaluation."""
    store = set_excess(hmm_store(seeds=FIVE_SEEDS), [0.010, 0.010, 0.010])
    store = learning_curves(store, early=0.05, meets_at=EVAL_STEPS.size - 2)
    row = only_row(scored(store, MINIMAL_ONE))
    assert row["verdict"] == "inconclusive"
    assert row["reason"] == f"flips within the plateau: confirmed at the end, refuted at step {EVAL_STEPS[-3]}"
    assert "needs longer training" in row["power"]


def test_minimal_heads_never_learned_is_inconclusive():
    store = set_excess(hmm_store(), [0.6, 0.5, 0.45])
    row = only_row(scored(store, MINIMAL_ONE))
    assert row["verdict"] == "inconclusive" and "never learned" in row["reason"]
    assert row["power"].startswith("undecidable with this model and training")


def test_minimal_heads_with_stakes_below_the_irreducible_excess_is_undecidable():
    # A second head could gain at most 0.0005 nats (factor 2's older-token information), while even the best
    # n_heads misses the filter by 0.003 nats: no model is close enough to show what a head adds.
    store = set_excess(hmm_store(), [0.011, 0.010, 0.010])
    store["factor_older_info"].loc[{"factor": 2}] = 0.0005
    row = only_row(scored(store, MINIMAL_TWO))
    assert row["verdict"] == "inconclusive" and row["reason"].startswith("undecidable: the stakes (0.0005 nats")
    assert row["power"].startswith("undecidable:") and "irreducible excess (0.003 nats" in row["power"]


def test_minimal_heads_below_the_paired_standard_error_is_inconclusive():
    store = set_excess(hmm_store(), [0.011, 0.010, 0.010])
    store["excess_loss_se"][:] = 0.01  # identical seeds, but each model's paired SE is 0.01 nats
    row = only_row(scored(store, MINIMAL_ONE))
    assert row["verdict"] == "inconclusive" and "below what the measurement resolves" in row["reason"]
    assert "paired SE ≤" in row["power"] and f"evaluation sequences, now {EVAL_SEQUENCES:,})" in row["power"]


def test_minimal_heads_a_measured_gain_above_the_resolution_is_resolved():
    store = set_excess(hmm_store(), [0.10, 0.010, 0.011])  # gain 0.09 x 0.3 = 0.027 nats, measured
    store["factor_older_info"][:] = 1e-5
    assert only_row(scored(store, MINIMAL_TWO))["verdict"] == "confirmed"


def test_minimal_heads_nan_measurement_is_inconclusive():
    store = hmm_store()
    store["normalised_excess"][:] = np.nan
    row = only_row(scored(store, MINIMAL_ONE))
    assert row["verdict"] == "inconclusive" and "missing" in row["reason"]


def test_not_run_when_the_condition_or_grid_value_is_absent():
    absent = entry("minimal_heads", {"condition": "elsewhere"}, "==", 1)
    three = entry("minimal_heads", {"condition": "c"}, "==", 3, id="three")
    table = scored(hmm_store(n_heads=(1, 2)), absent, three)
    assert list(table["verdict"]) == ["not run", "not run"]
    assert "not in this run's config: condition elsewhere" in table["reason"].iloc[0]
    assert "predicted 3 heads" in table["reason"].iloc[1]
    single = only_row(scored(hmm_store(n_heads=(2,)), MINIMAL_TWO))
    assert single["verdict"] == "not run" and "only 2" in single["reason"]
    missing = only_row(scored(None, MINIMAL_ONE))
    assert missing["verdict"] == "not run" and "no hmm store" in missing["reason"]


def test_infeasible_entry_is_scored_infeasible_without_a_store():
    infeasible = entry(
        "minimal_heads",
        {"condition": "impossible"},
        "==",
        2,
        id="impossible",
        infeasible="cannot be built",
        substitutes=["c"],
    )
    row = scored(hmm_store(), infeasible, MINIMAL_ONE).iloc[0]
    assert row["verdict"] == "infeasible" and row["reason"] == "cannot be built; tested instead on c"


def test_missing_store_variable_is_an_artifact_error():
    with pytest.raises(ArtifactError, match="lacks excess_loss_se"):
        scored(hmm_store().drop_vars("excess_loss_se"), MINIMAL_ONE)


@pytest.mark.parametrize("quantity", ["minimal_heads", "readoff_accuracy", "regression_loss_ratio"])
def test_a_store_without_convergence_evidence_is_an_artifact_error(quantity):
    stores = {"hmm": hmm_store(), "readoff": readoff_store(), "regression": regression_store()}
    task = quantities()[quantity].task
    stores[task] = stores[task].drop_vars(["converged", "steps_trained"])
    condition = {"hmm": {"condition": "c"}, "readoff": {"n_heads": 1}, "regression": {"attention": "linear"}}[task]
    with pytest.raises(ArtifactError, match=f"the {task} store lacks converged, steps_trained, needed to score"):
        score(document(entry(quantity, condition, ">=", 1)), stores)


# ------------------------------------------------------------------------------------- decay


DECAY_TWO = entry("decay_rate", {"condition": "c", "n_heads": 2}, "==", [0.7, 0.3], 0.05, figure="attention_decay")




def test_decay_heads_are_matched_to_rates_by_best_assignment():
    store = set_rates(hmm_store(lambdas=(0.7, 0.3)), [0.31, 0.68])  # heads in the opposite order
    row = only_row(scored(store, DECAY_TWO))
    assert row["verdict"] == "confirmed"
    assert row["observed"].startswith("0.68 ± 0 (3 seeds); 0.31 ± 0 (3 seeds)")
    assert "filter r_eff: 0.7 -> 0.50, 0.3 -> 0.50" in row["predicted"]


def test_decay_refuted_when_a_ci_lies_outside_the_band_and_filter_match_is_named():
    store = set_rates(hmm_store(lambdas=(0.7, 0.3)), [0.30, 0.40])
    store["factor_filter_decay"].loc[{"factor": 1}] = 0.40  # the filter itself decays at 0.40, not 0.7
    store["factor_filter_decay"].loc[{"factor": 2}] = 0.30
    row = only_row(scored(store, DECAY_TWO))
    assert row["verdict"] == "refuted" and "match the exact filter's r_eff" in row["reason"]


def test_decay_ci_straddling_the_band_is_inconclusive():
    store = set_rates(hmm_store(), [0.7, 0.3], half_width=0.1)
    row = only_row(scored(store, DECAY_TWO))
    assert row["verdict"] == "inconclusive" and "straddles" in row["reason"]


def test_decay_is_scored_at_every_emission_fidelity_separately():
    store = set_rates(hmm_store(a=(0.85, 0.6)), [0.7, 0.3], a=0.6)
    store = set_rates(store, [0.35, 0.2], a=0.85)
    table = scored(store, DECAY_TWO)
    assert list(table["condition"]) == [
        "c (n_layers=1, n_heads=2, d_head=8, a=0.85, loss=all)",
        "c (n_layers=1, n_heads=2, d_head=8, a=0.6, loss=all)",
    ]
    assert list(table["verdict"]) == ["refuted", "confirmed"]


def test_decay_on_an_unlearned_model_is_inconclusive():
    store = set_rates(hmm_store(), [0.7, 0.3])
    store["normalised_excess"][:] = 0.5
    assert "never learned" in only_row(scored(store, DECAY_TWO))["reason"]


def test_decay_flipping_within_the_plateau_is_inconclusive():
    """The final fit says 0.7, but the attention recorded at the plateau's first evaluation decayed at 0.4."""
    store = set_rates(hmm_store(lambdas=(0.7, 0.3)), [0.7, 0.3])
    store["eval_attention"].loc[{"eval_step": EVAL_STEPS[-3], "n_heads": 2, "layer": 0, "head": 0}] = geometric(0.4)
    row = only_row(scored(store, DECAY_TWO))
    assert row["verdict"] == "inconclusive" and row["reason"].startswith("flips within the plateau (3/3 seeds)")
    assert "needs longer training" in row["power"]


def test_decay_judged_on_converged_seeds_only():
    store = set_rates(hmm_store(lambdas=(0.7, 0.3)), [0.7, 0.3])
    store["converged"].loc[{"seed": 2, "n_heads": 2}] = 0.0
    row = only_row(scored(store, DECAY_TWO))
    assert row["verdict"] == "confirmed" and row["agreement"] == "2/3 seeds"
    store["converged"].loc[{"seed": 1, "n_heads": 2}] = 0.0
    row = only_row(scored(store, DECAY_TWO))
    assert row["verdict"] == "inconclusive" and row["reason"].startswith("not converged (2/3 seeds)")
    assert row["agreement"] == "1/3 seeds confirmed"






def test_parity_split_head_is_fitted_on_its_favoured_parity():
    store = parity_head(hmm_store(lambdas=(0.7, -0.7)), rate=0.7, favoured=1)
    decay = entry("decay_rate", {"condition": "c", "n_heads": 2}, "==", [0.7, 0.7], 0.05, id="decay")
    split = entry("parity_split", {"condition": "c", "n_heads": 2}, ">=", 1, id="split")
    table = scored(store, decay, split)
    assert list(table["verdict"]) == ["confirmed", "confirmed"]
    assert "[parity fit]" in table["observed"].iloc[0]
    assert table["observed"].iloc[1].startswith("1 (per seed 1, 1, 1)")


def test_parity_split_refuted_for_geometric_heads():
    split = entry("parity_split", {"condition": "c", "n_heads": 2}, ">=", 1)
    row = only_row(scored(hmm_store(), split))
    assert row["verdict"] == "refuted" and row["observed"].startswith("0 (per seed 0, 0, 0)")


@pytest.mark.parametrize("rho", [1.5, 3.0, 10.0])
@pytest.mark.parametrize("rate", [0.3, 0.7, 0.95])
def test_parity_contrast_is_log_rho_for_a_parity_weighted_geometric_curve(rate, rho):
    even = rate**DISTANCES * np.where(DISTANCES % 2 == 0, rho, 1.0)
    odd = rate**DISTANCES * np.where(DISTANCES % 2 == 1, rho, 1.0)
    curves = np.stack([even, odd, rate**DISTANCES])
    np.testing.assert_allclose(parity_contrast(curves, floor=1e-300), [np.log(rho), -np.log(rho), 0.0], atol=1e-12)


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5, 0.9])
def test_parity_contrast_floor_neither_fakes_nor_hides_a_split(rate):
    geometric_curve = geometric(rate)  # falls below the floor within the context for fast rates
    odd_only = np.where(DISTANCES % 2 == 1, geometric_curve, 0.0)
    contrast = parity_contrast(np.stack([geometric_curve, odd_only]))
    assert abs(contrast[0]) < 0.1 * np.log(2) and contrast[1] < -np.log(2)


def test_parity_contrast_is_nan_without_a_usable_triple():
    assert np.isnan(parity_contrast(np.array([0.5, 0.3, 0.2]))).all()
    assert np.isnan(parity_contrast(np.full(6, np.nan))).all()


# -------------------------------------------------------------------------- factor separation


SEPARATION = entry("factor_separation", {"condition": "c", "n_heads": 2}, ">=", 0.75, figure="ablation_matrix")


def set_damage(store: xr.Dataset, matrix) -> xr.Dataset:
    store["ablation_factor_excess"].loc[{"n_heads": 2, "layer": 0, "head": [0, 1]}] = xr.DataArray(
        np.asarray(matrix, dtype=float), dims=["head", "factor"], coords={"head": [0, 1], "factor": [1, 2]}
    )
    return store


@pytest.mark.parametrize(
    ("matrix", "verdict", "observed"),
    [
        ([[0.01, 0.0], [0.0, 0.01]], "confirmed", "1 ± 0"),
        ([[0.0, 0.02], [0.01, 0.0]], "confirmed", "1 ± 0"),  # head 1 carries factor 1: assignment is free
        ([[0.03, 0.01], [0.01, 0.03]], "confirmed", "0.75 ± 0"),  # (3/4 + 3/4) / 2
        ([[0.005, 0.005], [0.005, 0.005]], "refuted", "0.5 ± 0"),
        ([[0.04, 0.01], [0.01, 0.0]], "refuted", "0.6 ± 0"),  # max((4/5 + 0) / 2, (1/5 + 1) / 2)
    ],
)
def test_factor_separation_share_on_own_head(matrix, verdict, observed):
    row = only_row(scored(set_damage(hmm_store(), matrix), SEPARATION))
    assert row["verdict"] == verdict and row["observed"].startswith(observed)


def test_factor_separation_below_the_standard_error_is_inconclusive():
    row = only_row(scored(set_damage(hmm_store(), [[1e-5, 0.0], [0.0, 1e-5]]), SEPARATION))
    assert row["verdict"] == "inconclusive" and "below 3 x paired SE" in row["reason"]


# ---------------------------------------------------------------------------- readoff, regression


def test_readoff_accuracy_range_selector_expands_to_each_d_head():
    store = readoff_store()
    store["accuracy"].loc[{"n_heads": 1, "d_head": 8}] = [0.95, 0.97, 0.99]
    single = entry("readoff_accuracy", {"n_heads": 1, "d_head": {"min": 4}}, ">=", 0.99, figure="readoff_accuracy")
    table = scored(None, single, readoff=store)
    assert list(table["condition"]) == ["n_layers=1, n_heads=1, d_head=4", "n_layers=1, n_heads=1, d_head=8"]
    assert list(table["verdict"]) == ["confirmed", "refuted"]
    assert table["observed"].iloc[1] == "0.97 ± 0.02 (3 seeds)"


def test_every_quantity_is_gated_on_convergence():
    regression = regression_store()
    regression["converged"].loc[{"attention": "linear", "seed": [0, 1]}] = 0.0
    regression["steps_trained"].loc[{"attention": "linear", "seed": [0, 1]}] = 3000.0
    linear = entry("regression_loss_ratio", {"attention": "linear"}, "==", 1.0, 0.05)
    row = only_row(scored(None, linear, regression=regression))
    assert row["verdict"] == "inconclusive"
    assert row["reason"] == (
        "not converged (2/3 seeds): the convergence test failed within 3000 steps; other seeds: 1 confirmed"
    )
    assert row["power"] == "not converged in 3000 steps: needs longer training (raise max_steps)"
    readoff = readoff_store()
    readoff["converged"].loc[{"seed": 0}] = 0.0
    single = entry("readoff_accuracy", {"n_heads": 1, "d_head": 4}, ">=", 0.99)
    row = only_row(scored(None, single, readoff=readoff))
    assert row["verdict"] == "confirmed" and row["agreement"] == "2/3 seeds"


def test_seeds_that_disagree_leave_the_row_inconclusive_with_its_agreement():
    store = readoff_store()
    store["preference_tau"].loc[{"seed": 1}] = -2 / 3
    store["accuracy"].loc[{"seed": 2}] = 0.3
    inverted = entry("preference_inversion", {"n_heads": 2, "d_head": 1}, "==", -1.0)
    row = only_row(scored(None, inverted, readoff=store))
    assert row["verdict"] == "inconclusive" and row["agreement"] == "1/3 seeds confirmed"
    assert row["reason"] == "seeds disagree (1 confirmed, 1 refuted, 1 unlearned of 3 seeds)"
    assert "more seeds estimate how often the claim holds" in row["power"]


def test_generalisation_is_judged_at_the_worst_context_length_and_scale():
    ratio = entry("generalisation_loss_ratio", {"attention": "linear"}, "<=", 0.05)
    cosine = entry("generalisation_cosine", {"attention": "linear"}, ">=", 0.99, id="cosine")
    holds = scored(None, ratio, cosine, regression=regression_store(linear=1.02))
    assert list(holds["verdict"]) == ["confirmed", "confirmed"]
    assert holds["observed"].iloc[0].startswith("0.02 ± 0")
    drifts = scored(None, ratio, cosine, regression=regression_store(linear=1.02, far_ratio=1.2, far_cosine=0.9))
    assert list(drifts["verdict"]) == ["refuted", "refuted"]
    assert drifts["observed"].iloc[0].startswith("0.224 ± 0") and drifts["observed"].iloc[1].startswith("0.9 ± 0")
    untrained = scored(None, ratio, regression=regression_store(linear=2.05))
    assert list(untrained["verdict"]) == ["inconclusive"] and "zero predictor" in untrained["reason"].iloc[0]


def test_factored_geometry_verdicts():
    orthogonal = entry("factor_overlap", {"condition": "c"}, "<=", 0.1)
    factored = entry("belief_dimension_excess", {"condition": "c"}, "==", 0, id="dimension")
    loading = entry("head_factor_loading", {"condition": "c", "n_heads": 2}, ">=", 0.75, id="loading")
    table = scored(hmm_store(), orthogonal, factored, loading)
    assert list(table["verdict"]) == ["confirmed"] * 3 + ["confirmed"] * 3 + ["confirmed"]
    assert table["observed"].iloc[-1].startswith("0.9412")  # 0.8 / (0.8 + 0.05) on the weaker head
    mixed = hmm_store()
    mixed["factor_overlap"][:] = 0.6
    mixed["belief_dimension"][:] = 8.0
    mixed["head_factor_share"].loc[{"head": 1}] = 0.3  # head 1 splits its variance between the factors
    table = scored(mixed, orthogonal, factored, loading)
    assert list(table["verdict"]) == ["refuted"] * 7
    assert table["observed"].iloc[3].startswith("4 ± 0")  # 8 directions used, 4 in the factored count
    unlearned = hmm_store()
    unlearned["normalised_excess"][:] = 0.5
    assert set(scored(unlearned, orthogonal)["verdict"]) == {"inconclusive"}


def test_signal_uniformity_verdicts():
    uniform = entry("signal_uniformity", {"n_heads": 1, "d_head": {"min": 4}}, "<=", 1.2)
    rows = scored(None, uniform, readoff=readoff_store(preference=(0.11, 0.1, 0.1, 0.1)))
    assert list(rows["verdict"]) == ["confirmed", "confirmed"] and "1.1 ± 0" in rows["observed"].iloc[0]
    skewed = scored(None, uniform, readoff=readoff_store(preference=(0.3, 0.1, 0.1, 0.1)))
    assert list(skewed["verdict"]) == ["refuted", "refuted"] and "3 ± 0" in skewed["observed"].iloc[0]
    unsolved = scored(None, uniform, readoff=readoff_store(accuracy=0.5))
    assert set(unsolved["verdict"]) == {"inconclusive"} and "accuracy below 0.9" in unsolved["reason"].iloc[0]


def test_preference_inversion_verdicts():
    inverted = entry("preference_inversion", {"n_heads": 2, "d_head": 1}, "==", -1.0)
    assert only_row(scored(None, inverted, readoff=readoff_store()))["verdict"] == "confirmed"
    assert only_row(scored(None, inverted, readoff=readoff_store(tau=-2 / 3)))["verdict"] == "refuted"
    unlearned = only_row(scored(None, inverted, readoff=readoff_store(accuracy=0.3)))
    assert unlearned["verdict"] == "inconclusive" and "accuracy below 0.9" in unlearned["reason"]
    missing = only_row(scored(None, inverted, readoff=readoff_store(tau=np.nan)))
    assert missing["verdict"] == "inconclusive" and "preference_tau is NaN" in missing["reason"]


def test_regression_verdicts():
    linear = entry("regression_loss_ratio", {"attention": "linear"}, "==", 1.0, 0.05, id="linear")
    softmax = entry("regression_loss_ratio", {"attention": "softmax"}, ">", 1.0, 0.05, id="softmax")
    cosine = entry("gradient_cosine", {"attention": "linear"}, ">=", 0.99, id="cosine")
    table = scored(None, linear, softmax, cosine, regression=regression_store())
    assert list(table["verdict"]) == ["confirmed", "confirmed", "confirmed"]
    close = scored(None, linear, softmax, regression=regression_store(linear=1.08, softmax=1.03))
    assert list(close["verdict"]) == ["refuted", "refuted"]
    # A softmax model no better than predicting zero "does not match GD" only vacuously.
    untrained = only_row(scored(None, softmax, regression=regression_store(softmax=2.05)))
    assert untrained["verdict"] == "inconclusive" and "zero predictor" in untrained["reason"]
    # Nor does one still on its plateau: the zero predictor's ratio is (10/24) / 0.2061 = 2.02, the midpoint
    # to GD's 1.51; a seed at 1.8 is below the zero predictor but has not left its plateau.
    plateau = only_row(scored(None, softmax, regression=regression_store(softmax=1.8)))
    assert plateau["verdict"] == "inconclusive" and "midway" in plateau["reason"]
    assert only_row(scored(None, softmax, regression=regression_store(softmax=1.45)))["verdict"] == "confirmed"


def test_escape_fraction_is_judged_by_its_exact_binomial_interval():
    escapes = entry("escape_fraction", {"attention": "linear"}, ">=", 0.9)
    every = only_row(scored(None, escapes, regression=regression_store(linear=1.0)))
    assert every["verdict"] == "inconclusive" and every["observed"].startswith("3/3 seeds escaped")
    # all of n seeds escaping: the exact lower bound is 0.025^(1/n), above 0.9 from n = ln 0.025 / ln 0.9 on
    assert f"about {math.ceil(math.log(0.025) / math.log(0.9))} seeds" in every["power"]
    none = only_row(scored(None, escapes, regression=regression_store(linear=1.8)))  # every seed on the plateau
    assert none["verdict"] == "refuted" and "below 0.9" in none["reason"]


# ---------------------------------------------------------------- the shipped file, and the outputs


def default_stores() -> dict[str, xr.Dataset]:
    """Healthy synthetic stores on the default config's conditions and grids."""
    config = yaml.safe_load((PROJECT_ROOT / "config.yaml").read_text())
    ids = [condition["id"] for condition in config["hmm"]["conditions"]]
    hmm = hmm_store(conditions=ids, a=tuple(config["hmm"]["emission_fidelity"]))
    regression = synthetic_regression_store(
        architecture=("plain", "recurrent", "mlp_first"), n_layers=(1, 2, 3), n_heads=(1, 2, 4)
    )
    return {"hmm": hmm, "readoff": readoff_store(), "regression": regression}


def test_shipped_predictions_score_on_stores_of_the_default_config():
    table = score(load_predictions(), default_stores())
    assert tuple(table.columns) == COLUMNS
    assert set(table["verdict"]) <= set(VERDICTS)
    infeasible = table[table["verdict"] == "infeasible"]
    assert set(infeasible["id"]) == {"hmm-0.7-m0.7-heads", "hmm-0.7-m0.7-decay", "hmm-0.7-m0.7-parity"}
    assert infeasible["reason"].str.contains("-1/2").all()
    assert (infeasible["agreement"] == "—").all() and (infeasible["power"] == "").all()
    decided = table[table["verdict"].isin(["confirmed", "refuted"])]
    assert decided["agreement"].str.fullmatch(r"\d/3 seeds").all()
    assert "not run" not in set(table["verdict"])
    decay_rows = table[table["id"] == "hmm-0.7-0.7-decay"]
    assert len(decay_rows) == 2 and decay_rows["predicted"].str.contains("filter r_eff").all()  # one per a


def test_shipped_predictions_on_the_smoke_grid_report_not_run():
    hmm = hmm_store(conditions=("m3_0.7_m3_0.7", "ts_0.7_ts_-0.7"), n_heads=(1, 2), seeds=(0, 1))
    table = score(load_predictions(), {"hmm": hmm})
    absent = table[table["id"] == "hmm-0.7-0.3-heads"].iloc[0]
    assert absent["verdict"] == "not run" and "m3_0.7_m3_0.3" in absent["condition"]
    assert table[table["id"] == "regression-linear-loss"].iloc[0]["verdict"] == "not run"


def test_write_scores_csv_round_trips_and_markdown_has_rules_and_rows(tmp_path):
    table = score(load_predictions(), default_stores())
    table.loc[0, "reason"] = "a | b"
    write_scores(table, tmp_path / "scores.csv", tmp_path / "scores.md")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "scores.csv", dtype=str, keep_default_na=False), table)
    markdown = (tmp_path / "scores.md").read_text()
    assert markdown.startswith("# Scored predictions")
    shipped = load_predictions()
    assert f"Predictions version {shipped['version']}, written {shipped['written']}." in markdown
    assert verdict_rules_markdown() in markdown and "*decay_rate* (hmm)" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| id |")]
    assert len(rows) == len(table)
    assert "a \\| b" in rows[0]


def test_score_does_not_modify_the_predictions():
    predictions = load_predictions()
    before = copy.deepcopy(predictions)
    score(predictions, default_stores())
    assert predictions == before


# ------------------------------------------------------------------ models with several layers


def test_two_layer_heads_are_every_layer_head_pair():
    """A 2-layer model with one head per layer has two heads, layer 0's and layer 1's; padding is never a head."""
    store = hmm_store(n_layers=(1, 2), n_heads=(1, 2), lambdas=(0.7, 0.3))
    set_rates(store, [0.3], n_heads=1, n_layers=2, layer=1)  # layer 0's head keeps 0.7
    decay = entry("decay_rate", {"condition": "c", "n_layers": 2, "n_heads": 1}, "==", [0.7, 0.3], 0.05, id="decay")
    row = only_row(scored(store, decay))
    assert row["verdict"] == "confirmed" and row["observed"] == "0.7 ± 0 (3 seeds); 0.3 ± 0 (3 seeds)"
    assert row["condition"] == "c (n_layers=2, n_heads=1, d_head=8, a=0.85, loss=all)"

    parity_head(store, rate=0.7, favoured=0, n_heads=1, head=0, layer=1)
    split = entry("parity_split", {"condition": "c", "n_heads": 1}, ">=", 1, id="split")
    table = scored(store, split)
    assert list(table["condition"]) == [
        "c (n_layers=1, n_heads=1, d_head=8, a=0.85, loss=all)",
        "c (n_layers=2, n_heads=1, d_head=8, a=0.85, loss=all)",
    ]
    assert list(table["verdict"]) == ["refuted", "confirmed"]
    assert table["observed"].iloc[0].startswith("0 (per seed 0, 0, 0)")  # 1 layer: layer 1 is padding
    assert table["observed"].iloc[1].startswith("1 (per seed 1, 1, 1)")


def test_two_layer_factor_separation_assigns_heads_across_layers():
    store = hmm_store(n_layers=(2,), n_heads=(2,))
    damage = store["ablation_factor_excess"]
    damage.loc[{"layer": 0}] = 0.0
    damage.loc[{"layer": 1, "head": 1, "factor": 1}] = 0.01  # factor 1 on layer 1's second head
    damage.loc[{"layer": 0, "head": 0, "factor": 2}] = 0.01  # factor 2 on layer 0's first head
    row = only_row(scored(store, SEPARATION))
    assert row["verdict"] == "confirmed" and row["observed"].startswith("1 ± 0")


def test_two_layer_preference_inversion_takes_the_most_inverted_layer():
    store = readoff_store().isel(layer=[0, 0]).assign_coords(n_layers=[2], layer=[0, 1])
    store["preference_tau"].loc[{"layer": 1}] = 1.0  # layer 1's heads agree, layer 0's are inverted
    inverted = entry("preference_inversion", {"n_heads": 2, "d_head": 1}, "==", -1.0)
    row = only_row(scored(None, inverted, readoff=store))
    assert row["verdict"] == "confirmed" and row["condition"] == "n_layers=2, n_heads=2, d_head=1"


@pytest.mark.parametrize(
    ("ratios", "expected"),
    [
        ([0.25, 0.5], np.sqrt(0.125)),
        ([0.5, 2.0, np.nan, -1.0, 0.0, np.inf], 1.0),  # only positive finite steps count
        ([np.nan, 0.0, -0.3], np.nan),
    ],
)
def test_geometric_mean_of_the_positive_finite_steps(ratios, expected):
    np.testing.assert_allclose(geometric_mean(np.array(ratios)), expected)
    stacked = geometric_mean(np.tile(np.array(ratios), (2, 3, 1)))  # over the last axis only
    assert stacked.shape == (2, 3)
    np.testing.assert_allclose(stacked, np.full((2, 3), expected))
