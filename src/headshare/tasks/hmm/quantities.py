"""Scoring quantities of the hmm task: how many heads a product process needs, and what those heads do."""

from __future__ import annotations

import itertools

import numpy as np
import xarray as xr

from headshare.analysis.decay import geometric_mean, parity_contrast
from headshare.scoring.quantity import (
    Measured,
    NotRun,
    Quantity,
    counts,
    judged,
    outcomes,
    per_seed,
    per_seed_heads,
    spread,
)
from headshare.scoring.rule import Rule

_PARITIES = ["even", "odd"]
_UNLEARNED = "the model never learned the task (normalised excess loss above `unlearned_excess`)"


def _learned(point: xr.Dataset, rule: Rule) -> tuple[np.ndarray, np.ndarray]:
    """(finite, learned) per seed from the paired normalised excess loss at this grid point."""
    excess = per_seed(point["normalised_excess"])
    return np.isfinite(excess), excess <= rule.unlearned_excess


def _unlearned_text(rule: Rule) -> str:
    return f"normalised excess loss above {rule.unlearned_excess:g}"


# ------------------------------------------------------------------------------ minimal_heads


def _minimal_heads(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> Measured:
    point = point.sortby("n_heads")
    heads = point["n_heads"].values.astype(int)
    if heads.size < 2:
        raise NotRun(f"not in this run's config: minimal_heads compares n_heads, this run has only {heads[0]}")
    if not np.any(heads == rule.value):
        raise NotRun(f"not in this run's config: the predicted {rule.value:g} heads (n_heads {', '.join(map(str, heads))})")
    excess = per_seed(point["normalised_excess"], "n_heads")
    finite = np.all(np.isfinite(excess), axis=1)
    best = np.where(finite, np.min(np.where(finite[:, None], excess, np.inf), axis=1), np.nan)
    minimal = heads[np.argmax(excess <= best[:, None] + rule.margin, axis=1)]

    nats = per_seed(point["excess_loss"], "n_heads")[finite]
    measured_gain = float(np.mean(nats[:, 0] - nats.min(axis=1))) if nats.size else np.nan
    older = float(point["factor_older_info"].min())
    stakes = float(np.fmax(older, measured_gain))
    context_gain = float(point["context_gain"])
    se = float(point["excess_loss_se"].max())
    resolution = float(np.fmax(rule.margin * context_gain, rule.resolution_factor * se))

    per_seed_minimal = [int(m) if ok else None for m, ok in zip(minimal, finite)]
    return Measured(
        outcomes=outcomes(
            np.array([rule.holds(m) for m in minimal]),
            finite=finite,
            learned=best <= rule.unlearned_excess,
            resolved=np.full(minimal.shape, stakes >= resolution),
        ),
        observed=f"{counts(per_seed_minimal)}; best normalised excess {spread(best)}",
        explain={
            **judged(f"the smallest n_heads within {rule.margin:g} of the best normalised excess", rule),
            "unlearned": f"best {_unlearned_text(rule)} (lowest {np.nanmin(best):.3g})" if finite.any() else "",
            "unresolved": (
                f"an extra head can gain at most {stakes:.2g} nats (older-token information {older:.2g}, "
                f"measured gain {measured_gain:.2g}) < resolution {resolution:.2g} nats "
                f"(margin x context gain {context_gain:.3g}, {rule.resolution_factor:g} x paired SE {se:.2g})"
            ),
            "missing": "normalised_excess is NaN for some n_heads",
        },
    )


# ---------------------------------------------------------------------------------- decay_rate


def _head_rates(point: xr.Dataset, rule: Rule) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per seed and head (S, H): fitted rate, CI low, CI high, and whether the head is parity-split.

    A parity-split head has no meaningful rate over all distances (the other parity sits near zero), so
    its rate is the fit over the parity it favours; every other head keeps the fit over all distances."""
    contrast = parity_contrast(per_seed_heads(point["attention_distance"], point, "distance"))
    split = np.abs(contrast) >= np.log(rule.parity_ratio)
    favoured = np.where(contrast > 0, 0, 1)[..., None]

    def pick(full: str, by_parity: str) -> np.ndarray:
        parity = per_seed_heads(point[by_parity].sel(parity=_PARITIES), point, "parity")
        on_favoured = np.take_along_axis(parity, favoured, axis=-1)[..., 0]
        return np.where(split, on_favoured, per_seed_heads(point[full], point))

    return (
        pick("decay_rate", "decay_rate_parity"),
        pick("decay_ci_low", "decay_parity_ci_low"),
        pick("decay_ci_high", "decay_parity_ci_high"),
        split,
    )


def _decay_rate(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> Measured:
    rate, low, high, split = _head_rates(point, rule)
    predicted = np.asarray(rule.value)
    band_low, band_high = predicted - rule.tolerance, predicted + rule.tolerance
    matched = np.zeros(rate.shape[0], dtype=bool)
    missed = np.zeros(rate.shape[0], dtype=bool)
    assigned = np.full((rate.shape[0], predicted.size), np.nan)
    parity_used = np.zeros(predicted.size, dtype=bool)
    for seed in range(rate.shape[0]):
        fitted = np.flatnonzero(np.isfinite(rate[seed]) & np.isfinite(low[seed]) & np.isfinite(high[seed]))
        if fitted.size < predicted.size:
            continue
        order = list(
            min(
                itertools.permutations(fitted, predicted.size),
                key=lambda heads: np.abs(rate[seed, list(heads)] - predicted).sum(),
            )
        )
        assigned[seed] = rate[seed, order]
        parity_used |= split[seed, order]
        inside = (low[seed, order] >= band_low) & (high[seed, order] <= band_high)
        outside = (high[seed, order] < band_low) | (low[seed, order] > band_high)
        matched[seed], missed[seed] = inside.all(), outside.any()

    r_eff = geometric_mean(point["factor_filter_decay"].transpose("factor", "step").values)
    lambdas = [float(point[f"lambda{factor}"]) for factor in (1, 2)]
    filter_note = ", ".join(f"{lam:g} -> {r:.2f}" for lam, r in zip(lambdas, r_eff))
    means = np.array(
        [np.mean(column[np.isfinite(column)]) if np.isfinite(column).any() else np.nan for column in assigned.T]
    )
    like_filter = all(np.any(np.abs(mean - r_eff) <= rule.tolerance) for mean in means)
    slots = [
        spread(assigned[:, slot]).replace(" (", " [parity fit] (" if parity_used[slot] else " (", 1)
        for slot in range(predicted.size)
    ]
    finite, learned = _learned(point, rule)
    return Measured(
        outcomes=outcomes(matched & ~missed, finite=finite, learned=learned, resolved=matched | missed),
        observed="; ".join(slots),
        explain={
            "confirmed": f"every predicted rate has a head whose CI lies inside rate ± {rule.tolerance:g}",
            "refuted": f"a predicted rate's matched head has its CI wholly outside rate ± {rule.tolerance:g}"
            + (
                "; the rates match the exact filter's r_eff instead (the lambda law belongs to weak emissions)"
                if like_filter
                else ""
            ),
            "unlearned": _unlearned_text(rule),
            "unresolved": "a head has no decay fit or its CI straddles the tolerance band",
            "missing": "normalised_excess is NaN",
        },
        predicted_note=f" [lambda -> filter r_eff: {filter_note}]",
    )


# -------------------------------------------------------------------------------- parity_split


def _parity_split(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> Measured:
    curves = per_seed_heads(point["attention_distance"], point, "distance")
    contrast = parity_contrast(curves)
    count = (np.abs(contrast) >= np.log(rule.parity_ratio)).sum(axis=1)
    finite, learned = _learned(point, rule)
    finite &= np.isfinite(curves).all(axis=(1, 2))
    strongest = float(np.exp(np.nanmax(np.abs(contrast)))) if np.isfinite(contrast).any() else np.nan
    return Measured(
        outcomes=outcomes(np.array([rule.holds(c) for c in count]), finite=finite, learned=learned),
        observed=f"{counts([int(c) for c in count])}; strongest parity ratio {strongest:.3g}",
        explain={
            **judged(f"the number of heads giving one parity >= {rule.parity_ratio:g}x the other's", rule),
            "unlearned": _unlearned_text(rule),
            "missing": "attention curves or normalised_excess are NaN",
        },
    )


# --------------------------------------------------------------------------- factor_separation


def _factor_separation(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> Measured:
    damage = per_seed_heads(point["ablation_factor_excess"], point, "factor")
    damage = np.maximum(damage, 0.0)  # NaN stays NaN; a head whose ablation helps carries none of the factor
    total = damage.sum(axis=1)  # (S, F)
    share = damage / np.where(total > 0, total, np.nan)[:, None, :]
    factors = np.arange(share.shape[-1])
    separation = np.max(
        [
            share[:, list(order), factors].mean(axis=1)
            for order in itertools.permutations(range(share.shape[1]), factors.size)
        ],
        axis=0,
    )
    se = per_seed(point["excess_loss_se"])
    resolved = total.min(axis=1) >= rule.resolution_factor * se
    finite, learned = _learned(point, rule)
    finite &= np.isfinite(damage).all(axis=(1, 2)) & np.isfinite(se)
    return Measured(
        outcomes=outcomes(np.array([rule.holds(s) for s in separation]), finite=finite, learned=learned, resolved=resolved),
        observed=spread(separation),
        explain={
            **judged("the mean share of each factor's ablation damage on its own head", rule),
            "unlearned": _unlearned_text(rule),
            "unresolved": (
                f"a factor's total ablation damage ({np.nanmin(total):.2g} nats) is below "
                f"{rule.resolution_factor:g} x paired SE ({np.nanmax(se):.2g})"
            ),
            "missing": "ablation_factor_excess, excess_loss_se or normalised_excess is NaN",
        },
    )


# ------------------------------------------------------------------------------- declarations

_POINT = ("normalised_excess",)
_DECAY = (
    "attention_distance",
    "decay_rate",
    "decay_ci_low",
    "decay_ci_high",
    "decay_rate_parity",
    "decay_parity_ci_low",
    "decay_parity_ci_high",
    "factor_filter_decay",
    "lambda1",
    "lambda2",
)

QUANTITIES = (
    Quantity(
        name="minimal_heads",
        task="hmm",
        variables=(*_POINT, "excess_loss", "excess_loss_se", "context_gain", "factor_older_info"),
        measure=_minimal_heads,
        integer=True,
        sweeps_heads=True,
        requires=("condition",),
        rule_note=lambda rule: f" (margin {rule.margin:g})",
        verdict="""
            per seed, the smallest n_heads whose paired normalised excess loss lies within `margin` of the
            best n_heads of that seed. Inconclusive when the best n_heads never learned the task (normalised
            excess above `unlearned_excess`), or when the loss an extra head could gain - the larger of the
            smaller factor's older-token information and the measured gain over the fewest heads - is below
            max(margin x context gain, `resolution_factor` x paired SE).
        """,
    ),
    Quantity(
        name="decay_rate",
        task="hmm",
        variables=(*_POINT, *_DECAY),
        measure=_decay_rate,
        rates=True,
        heads=1,
        requires=("condition",),
        verdict="""
            heads are matched to the predicted rates by the assignment with the smallest total difference;
            a rate matches when its fitted CI lies inside rate ± tolerance and misses when the CI lies wholly
            outside. A parity-split head is fitted on the parity it favours. Inconclusive when a head has no
            fit or a decay CI straddles the tolerance band, or when """
        + _UNLEARNED
        + """. The exact filter's effective decay r_eff is printed beside lambda: at strong emissions it is
            faster than lambda.
        """,
    ),
    Quantity(
        name="parity_split",
        task="hmm",
        variables=(*_POINT, "attention_distance"),
        measure=_parity_split,
        integer=True,
        heads=1,
        requires=("condition",),
        verdict="""
            the number of heads whose attention on their favoured parity of d-s is at least `parity_ratio`
            times the other parity's, after removing the geometric decay. Inconclusive when """
        + _UNLEARNED
        + ".",
    ),
    Quantity(
        name="factor_separation",
        task="hmm",
        variables=(*_POINT, "ablation_factor_excess", "excess_loss_se"),
        measure=_factor_separation,
        heads=2,
        requires=("condition",),
        verdict="""
            mean share of each factor's ablation damage carried by its own head (best assignment): 1 is full
            separation, 1/n_heads identical heads. Inconclusive when a factor's total ablation damage is
            below `resolution_factor` x paired SE, or when """
        + _UNLEARNED
        + ".",
    ),
)
