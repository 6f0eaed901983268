"""filter_decay and the decay_phase figure: heads judged against the exact filter's effective decay r_eff.

The stores are the scorer tests' hand-built ones, whose verdicts are known by construction: the filter's
per-step ratios are set by hand, and r_eff is their geometric mean, computed here independently.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from helpers.figure_checks import MAX_HEIGHT, shown_texts, shows
from helpers.scoring_stores import (
    EVAL_STEPS,
    entry,
    geometric,
    hmm_store,
    only_row,
    parity_head,
    scored,
    set_rates,
)

from headshare import figures
from headshare.figures.canvas import MAX_WIDTH
from headshare.figures.render import draw_page
from headshare.tasks.hmm.plots import phase_ratios

STEPS = 9  # hmm_store's filter steps 1..9
# Factor 1's filter: ratio 0.5 at steps 1-4, 0.32 at steps 5-9; factor 2's: 0.25 throughout.
FACTOR_1_RATIOS = [0.5] * 4 + [0.32] * 5
R_EFF_1 = (0.5**4 * 0.32**5) ** (1 / 9)  # 0.3883..., far from lambda 0.7
R_EFF_2 = 0.25
FILTER_TWO = entry("filter_decay", {"condition": "c", "n_heads": 2}, "<=", 0.05, id="filter")
FILTER_ONE = entry("filter_decay", {"condition": "c", "n_heads": 1}, "<=", 0.05, id="filter-one")
LAMBDA_TWO = entry("decay_rate", {"condition": "c", "n_heads": 2}, "==", [0.7, 0.3], 0.05, id="lambda")


def strong_emissions(lambdas=(0.7, 0.3), **store) -> xr.Dataset:
    """A store whose filter forgets faster than |lambda|, as at strong emissions (SCIENCE.md §8)."""
    built = hmm_store(lambdas=lambdas, **store)
    built["factor_filter_decay"].loc[{"factor": 1}] = xr.DataArray(FACTOR_1_RATIOS, dims=["step"])
    built["factor_filter_decay"].loc[{"factor": 2}] = R_EFF_2
    return built


def test_r_eff_is_the_geometric_mean_of_the_filter_ratios():
    assert len(FACTOR_1_RATIOS) == STEPS
    assert R_EFF_1 == pytest.approx(math.exp((4 * math.log(0.5) + 5 * math.log(0.32)) / 9))
    store = set_rates(strong_emissions(), [R_EFF_1, R_EFF_2])
    row = only_row(scored(store, FILTER_TWO))
    assert f"0.7 -> {R_EFF_1:.2f}, 0.3 -> {R_EFF_2:.2f}" in row["predicted"]
    assert row["predicted"].startswith("<= 0.05 (|fitted decay - the factor's filter r_eff|)")


def test_heads_decaying_at_r_eff_are_confirmed_and_the_lambda_claim_refuted():
    store = set_rates(strong_emissions(), [R_EFF_2, R_EFF_1])  # heads in the opposite order to the factors
    table = scored(store, FILTER_TWO, LAMBDA_TWO)
    filtered, lam = table.iloc[0], table.iloc[1]
    assert filtered["verdict"] == "confirmed" and filtered["agreement"] == "3/3 seeds"
    assert filtered["observed"] == f"factor 1: {R_EFF_1:.4g} ± 0 (3 seeds); factor 2: {R_EFF_2:.4g} ± 0 (3 seeds)"
    assert lam["verdict"] == "refuted" and "match the exact filter's r_eff" in lam["reason"]


def test_heads_decaying_at_lambda_with_strong_emissions_are_refuted():
    store = set_rates(strong_emissions(), [0.7, 0.3])  # |0.7 - r_eff 0.39| and |0.3 - 0.25| exceed the band
    table = scored(store, FILTER_TWO, LAMBDA_TWO)
    filtered, lam = table.iloc[0], table.iloc[1]
    assert filtered["verdict"] == "refuted" and "match |lambda| instead" in filtered["reason"]
    assert "wholly outside r_eff ± 0.05" in filtered["reason"]
    assert lam["verdict"] == "confirmed"


def test_a_ci_straddling_the_band_is_inconclusive_with_its_power():
    store = set_rates(strong_emissions(), [R_EFF_1 + 0.04, R_EFF_2], half_width=0.03)
    row = only_row(scored(store, FILTER_TWO))
    assert row["verdict"] == "inconclusive" and "straddles" in row["reason"]
    assert row["power"].startswith("a decay CI (widest half-width 0.03) straddles r_eff ± 0.05")


def test_unconverged_models_are_inconclusive():
    store = set_rates(strong_emissions(), [R_EFF_1, R_EFF_2])
    store["converged"].loc[{"n_heads": 2}] = 0.0
    row = only_row(scored(store, FILTER_TWO))
    assert row["verdict"] == "inconclusive" and row["reason"].startswith("not converged (3/3 seeds)")
    assert "needs longer training" in row["power"]


def test_flipping_within_the_plateau_is_inconclusive():
    """The final fit matches r_eff, but the attention at the plateau's first evaluation decayed at 0.7."""
    store = set_rates(strong_emissions(), [R_EFF_1, R_EFF_2])
    store["eval_attention"].loc[{"eval_step": EVAL_STEPS[-3], "n_heads": 2, "layer": 0, "head": 0}] = geometric(0.7)
    row = only_row(scored(store, FILTER_TWO))
    assert row["verdict"] == "inconclusive" and row["reason"].startswith("flips within the plateau (3/3 seeds)")


def test_a_single_head_serves_both_factors_only_when_they_forget_alike():
    alike = hmm_store(lambdas=(0.7, 0.7))  # both filters at 0.5; the single head decays at 0.5
    set_rates(alike, [0.5], n_heads=1)
    assert only_row(scored(alike, FILTER_ONE))["verdict"] == "confirmed"
    unlike = set_rates(strong_emissions(), [R_EFF_1], n_heads=1)
    row = only_row(scored(unlike, FILTER_ONE))
    assert row["verdict"] == "refuted"
    assert row["observed"] == f"factor 1: {R_EFF_1:.4g} ± 0 (3 seeds); factor 2: {R_EFF_1:.4g} ± 0 (3 seeds)"


def test_a_parity_split_head_is_judged_on_its_favoured_parity():
    store = set_rates(strong_emissions(lambdas=(0.7, -0.3)), [R_EFF_1, R_EFF_2])
    store = parity_head(store, rate=R_EFF_2, favoured=1)
    row = only_row(scored(store, FILTER_TWO))
    assert row["verdict"] == "confirmed" and "[parity fit]" in row["observed"]


def test_an_unlearned_model_and_a_missing_filter_are_inconclusive():
    store = set_rates(strong_emissions(), [R_EFF_1, R_EFF_2])
    store["normalised_excess"][:] = 0.5
    assert "never learned" in only_row(scored(store, FILTER_TWO))["reason"]
    store = set_rates(strong_emissions(), [R_EFF_1, R_EFF_2])
    store["factor_filter_decay"].loc[{"factor": 2}] = np.nan
    row = only_row(scored(store, FILTER_TWO))
    assert row["verdict"] == "inconclusive" and "factor_filter_decay is NaN" in row["reason"]


@pytest.mark.parametrize(("op", "value"), [("==", 0.05), ("<=", 1.5)])
def test_a_rule_that_is_not_a_band_is_refused_in_one_line(op, value):
    bad = entry("filter_decay", {"condition": "c", "n_heads": 2}, op, value, id="bad")
    with pytest.raises(ValueError, match=rf"filter_decay needs rule op '<=' and value a tolerance band in \(0, 1\), got {op}"):
        scored(hmm_store(), bad)


# ------------------------------------------------------------------------------------ decay_phase


def test_phase_ratios_divide_the_matched_heads_decay_by_lambda_and_by_r_eff():
    store = set_rates(strong_emissions(), [R_EFF_2, R_EFF_1])
    ratios = phase_ratios(store.sel(n_layers=1, d_head=8, loss="all"), "c", parity_ratio=2.0)
    two_heads = list(store["n_heads"].values).index(2)
    by_lambda, by_filter = ratios[0, two_heads, 0], ratios[1, two_heads, 0]  # (seed, factor) at a = 0.85
    np.testing.assert_allclose(by_filter, 1.0)
    np.testing.assert_allclose(by_lambda, np.tile([R_EFF_1 / 0.7, R_EFF_2 / 0.3], (3, 1)))


def test_decay_phase_shows_every_value_of_every_axis_within_a_page(sweep):  # noqa: F811
    grid, store = sweep["hmm"]
    spec = figures.get("decay_phase")
    pages = spec.pages(grid)
    assert len(pages) == len(grid["loss"]) * len(grid["d_head"]) * len(grid["n_layers"])
    for page in (pages[0], pages[-1]):
        fig = draw_page(spec, page, store)
        texts = shown_texts(fig)
        expected = [(axis, value) for axis in (*spec.facets, *spec.summarised) for value in grid[axis]]
        missing = [(axis, value) for axis, value in [*expected, *page.fixed.items()] if not shows(texts, axis, value)]
        assert not missing, missing
        panels = [ax for ax in fig.axes if ax.get_title()]
        assert len(panels) == 2 * len(grid["condition"])
        assert all(any(list(line.get_ydata()) == [1.0, 1.0] for line in ax.get_lines()) for ax in panels)
        width, height = fig.get_size_inches()
        assert width <= MAX_WIDTH + 1e-9 and height <= MAX_HEIGHT
