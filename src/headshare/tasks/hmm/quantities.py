"""Scoring quantities of the hmm task: how many heads a product process needs, and what those heads do."""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass

import numpy as np
import xarray as xr

from headshare.analysis.decay import geometric_mean, parity_contrast
from headshare.scoring.convergence import FLIP_POWER, converged_seeds, plateau_steps
from headshare.scoring.quantity import (
    Measured,
    NotRun,
    Pooled,
    Quantity,
    counts,
    judged,
    outcomes,
    per_seed,
    per_seed_heads,
    spread,
)
from headshare.scoring.rule import Rule
from headshare.scoring.statistics import SeedMean, power_statement, seed_mean
from headshare.store import ArtifactError

_PARITIES = ["even", "odd"]
_UNLEARNED = "the model never learned the task (normalised excess loss above `unlearned_excess`)"


def _learned(point: xr.Dataset, rule: Rule) -> tuple[np.ndarray, np.ndarray]:
    """(finite, learned) per seed from the paired normalised excess loss at this grid point."""
    excess = per_seed(point["normalised_excess"])
    return np.isfinite(excess), excess <= rule.unlearned_excess


def _unlearned_text(rule: Rule) -> str:
    return f"normalised excess loss above {rule.unlearned_excess:g}"


# ------------------------------------------------------------------------------ minimal_heads


@dataclass(frozen=True)
class HeadsDecision:
    """What the paired comparisons across seeds say about the claim "the minimal n_heads is ``value``".

    ``verdict`` is confirmed | refuted | unresolved; ``minimal`` the smallest n_heads shown to suffice (the
    largest in the grid when no smaller one is); ``deciding`` the comparisons the verdict rests on, whose
    widest bound is the resolution a power statement starts from."""

    verdict: str
    reason: str
    minimal: int
    deciding: tuple[SeedMean, ...]


def decide_heads(excess: np.ndarray, heads: np.ndarray, value: int, margin: float, se: np.ndarray) -> HeadsDecision:
    """Judge "the minimal n_heads is ``value``" from ``excess`` (seed, n_heads) in nats of converged models,
    n_heads ascending, with per-model paired SEs ``se`` of the same shape.

    k heads suffice when the gain from more heads - excess(k) - excess(n), n the n_heads > k with the lowest
    mean over seeds, paired by seed - has a one-sided 95% upper bound below ``margin``; the largest n_heads of
    the grid suffices by default (nothing larger to compare). k heads are needed when excess(k-1) - excess(k)
    has a one-sided 95% lower bound above 0. Confirmed when ``value`` suffices and ``value`` - 1 heads are
    needed (or ``value`` is the grid's smallest); refuted when a smaller n_heads suffices or the gain from
    more heads than ``value`` has a lower bound above ``margin``; otherwise unresolved."""
    position = int(np.flatnonzero(heads == value)[0])
    means = excess.mean(axis=0)
    gains = [
        seed_mean(excess[:, k] - excess[:, best], se[:, [k, best]])
        for k in range(len(heads) - 1)
        for best in [k + 1 + int(np.argmin(means[k + 1 :]))]
    ]
    suffices = [gain.upper < margin for gain in gains] + [True]
    minimal = int(heads[suffices.index(True)])
    smaller = [int(heads[k]) for k in range(position) if suffices[k]]
    if smaller:
        gain = gains[heads.tolist().index(smaller[0])]
        return HeadsDecision(
            "refuted",
            f"{smaller[0]} heads suffice: the gain from more heads is {gain.mean:.2g} nats, 95% upper bound "
            f"{gain.upper:.2g} < margin {margin:.2g}",
            minimal,
            tuple(gains[:position]),
        )
    if position < len(gains) and gains[position].lower > margin:
        gain = gains[position]
        return HeadsDecision(
            "refuted",
            f"{value} heads do not suffice: more heads gain {gain.mean:.2g} nats, 95% lower bound "
            f"{gain.lower:.2g} > margin {margin:.2g}",
            minimal,
            (gain,),
        )
    needed = seed_mean(excess[:, position - 1] - excess[:, position], se[:, [position - 1, position]])
    own = gains[position] if position < len(gains) else None
    deciding = tuple(gains[:position]) + ((own,) if own else ()) + ((needed,) if position else ())
    suffice_text = (
        f"more heads gain {own.mean:.2g} nats (95% upper bound {own.upper:.2g}, margin {margin:.2g})"
        if own
        else "the grid's largest n_heads"
    )
    need_text = (
        f"{heads[position - 1]} heads lose {needed.mean:.2g} nats (95% lower bound {needed.lower:.2g})"
        if position
        else "the grid's smallest n_heads"
    )
    if suffices[position] and (position == 0 or needed.lower > 0):
        return HeadsDecision("confirmed", f"{value} heads suffice ({suffice_text}); {need_text}", minimal, deciding)
    return HeadsDecision(
        "unresolved",
        f"neither shown: {value} heads suffice ({suffice_text}) and fewer do not ({need_text})",
        minimal,
        deciding,
    )


def _smallest_sufficient(excess: np.ndarray, heads: np.ndarray, margin: float) -> np.ndarray:
    """Per seed (rows of ``excess``), the smallest n_heads within ``margin`` of every larger one's excess."""
    later_best = np.minimum.accumulate(excess[:, ::-1], axis=1)[:, ::-1]  # best of n_heads >= k
    beaten = np.concatenate([excess[:, :-1] - later_best[:, 1:], np.zeros((len(excess), 1))], axis=1)
    return heads[np.argmax(beaten < margin, axis=1)]


def _evaluation_sequences(store: xr.Dataset) -> int:
    """Sequences in each hmm evaluation dataset, from the config the store records."""
    try:
        return int(json.loads(store.attrs["config"])["hmm"]["eval_sequences"])
    except (KeyError, TypeError, ValueError):
        raise ArtifactError("the hmm store's attrs lack config.hmm.eval_sequences, needed for a power statement") from None


def _minimal_heads(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> Measured:
    point = point.sortby("n_heads")
    heads = point["n_heads"].values.astype(int)
    if heads.size < 2:
        raise NotRun(f"not in this run's config: minimal_heads compares n_heads, this run has only {heads[0]}")
    if not np.any(heads == rule.value):
        raise NotRun(f"not in this run's config: the predicted {rule.value:g} heads (n_heads {', '.join(map(str, heads))})")
    value = int(rule.value)  # type: ignore[arg-type]
    nats, se = per_seed(point["excess_loss"], "n_heads"), per_seed(point["excess_loss_se"], "n_heads")
    normalised = per_seed(point["normalised_excess"], "n_heads")
    finite = np.all(np.isfinite(nats) & np.isfinite(se) & np.isfinite(normalised), axis=1)
    best = np.where(finite, np.nanmin(np.where(finite[:, None], normalised, np.inf), axis=1), np.nan)
    learned = best <= rule.unlearned_excess
    usable = finite & learned & converged_seeds(point)

    older = float(point["factor_older_info"].min())
    measured_gain = float(np.mean(nats[usable, 0] - nats[usable].min(axis=1))) if usable.any() else np.nan
    stakes = float(np.fmax(older, measured_gain))
    margin = rule.margin * stakes
    minimal = np.where(finite, _smallest_sufficient(np.nan_to_num(nats), heads, margin), 0)
    per_seed_minimal = [int(m) if ok else None for m, ok in zip(minimal, finite)]
    measured = Measured(
        outcomes=outcomes(minimal == value, finite=finite, learned=learned),
        observed=f"per seed {counts(per_seed_minimal)}; best normalised excess {spread(best[usable])}",
        explain={
            "confirmed": f"{value} is that seed's smallest n_heads within the margin of every larger one",
            "refuted": f"{value} is not that seed's smallest n_heads within the margin of every larger one",
            "unlearned": f"best {_unlearned_text(rule)}" + (f" (lowest {np.nanmin(best):.3g})" if finite.any() else ""),
            "missing": "excess_loss, excess_loss_se or normalised_excess is NaN for some n_heads",
        },
        predicted_note=f" (margin {rule.margin:g} x stakes = {margin:.2g} nats)" if np.isfinite(margin) else "",
    )
    if usable.sum() == 0:
        return measured
    pooled, observed = _pooled_heads(point, rule, heads, nats[usable], se[usable], usable, stakes, margin, store)
    return dataclasses.replace(measured, pooled=pooled, observed=f"{observed}; {measured.observed}")


def _pooled_heads(
    point: xr.Dataset,
    rule: Rule,
    heads: np.ndarray,
    nats: np.ndarray,
    se: np.ndarray,
    usable: np.ndarray,
    stakes: float,
    margin: float,
    store: xr.Dataset,
) -> tuple[Pooled, str]:
    """The row's verdict from the usable seeds' paired comparisons, checked over the plateau, and the
    observed minimal n_heads."""
    value = int(rule.value)  # type: ignore[arg-type]
    decision = decide_heads(nats, heads, value, margin, se)
    observed = f"minimal n_heads {decision.minimal} over {usable.sum()} seeds"
    irreducible = float(nats.mean(axis=0).min())
    if irreducible >= stakes:
        why = (
            f"the stakes ({stakes:.2g} nats: older-token information {float(point['factor_older_info'].min()):.2g}, "
            f"measured gain) are below the model class's irreducible excess ({irreducible:.2g} nats, the best "
            f"n_heads' mean): no model comes close enough to the filter to show what an extra head adds"
        )
        return Pooled("undecidable", f"undecidable: {why}", f"undecidable: {why}"), observed
    flipped = _flip_over_plateau(point, heads, value, margin, usable, decision.verdict)
    if flipped:
        reason = f"flips within the plateau: {decision.verdict} at the end, {flipped}"
        return Pooled("flips", reason, FLIP_POWER), observed
    if decision.verdict != "unresolved":
        return Pooled(decision.verdict, decision.reason), observed
    widest = max(decision.deciding, key=lambda mean: mean.half_width)
    power = power_statement(stakes, widest, margin / 2, float(se.max()), _evaluation_sequences(store))
    return Pooled("unresolved", f"below what the measurement resolves: {decision.reason}", power), observed


def _flip_over_plateau(
    point: xr.Dataset, heads: np.ndarray, value: int, margin: float, usable: np.ndarray, final: str
) -> str:
    """'' when no earlier evaluation step of the plateau gives the definite verdict opposite to ``final``,
    else which step does; the plateau is the last quarter of the evaluation steps every compared model
    recorded, judged with the same statistics on the held-out convergence batch."""
    if final not in ("confirmed", "refuted"):
        return ""
    curves = per_seed(point["eval_metric"], "n_heads", "eval_step")[usable]
    curve_se = per_seed(point["eval_metric_se"], "n_heads", "eval_step")[usable]
    steps = point["eval_step"].values
    for step in plateau_steps(np.isfinite(curves).all(axis=(0, 1)) & np.isfinite(curve_se).all(axis=(0, 1))):
        there = decide_heads(curves[..., step], heads, value, margin, curve_se[..., step]).verdict
        if there in ("confirmed", "refuted") and there != final:
            return f"{there} at step {steps[step]}"
    return ""


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
