"""Scoring quantities of the hmm task: how many heads a product process needs, and what those heads do."""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass

import numpy as np
import xarray as xr

from headshare.analysis.decay import fit_decay, fit_decay_by_parity, geometric_mean, parity_contrast
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
from headshare.scoring.statistics import SeedMean, power_statement, seed_mean, sequences_needed
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
    grid's largest when no smaller one is), ``settled`` whether every smaller n_heads is shown not to;
    ``deciding`` the comparisons the verdict rests on, whose widest bound a power statement starts from."""

    verdict: str
    reason: str
    minimal: int
    settled: bool
    deciding: tuple[SeedMean, ...]

    @property
    def observed(self) -> str:
        return f"minimal n_heads {'' if self.settled else '<= '}{self.minimal}"


def decide_heads(excess: np.ndarray, heads: np.ndarray, value: int, margin: float, se: np.ndarray) -> HeadsDecision:
    """Judge "the minimal n_heads is ``value``" from ``excess`` (seed, n_heads) in nats of converged models,
    n_heads ascending, with per-model paired SEs ``se`` of the same shape.

    k heads suffice when the gain from more heads - excess(k) - excess(n), n the n_heads > k with the lowest
    mean over seeds, paired by seed - has a one-sided 95% upper bound below ``margin``; the largest n_heads of
    the grid suffices by default (nothing larger to compare), and k clearly does not suffice when that gain's
    lower bound is above ``margin``. k heads are needed when excess(k-1) - excess(k) has a one-sided 95% lower
    bound above 0. Confirmed when ``value`` suffices and ``value`` - 1 heads are needed (or ``value`` is the
    grid's smallest); refuted when a smaller n_heads suffices or ``value`` clearly does not; else unresolved."""
    position = int(np.flatnonzero(heads == value)[0])
    means = excess.mean(axis=0)
    gains = [
        seed_mean(excess[:, k] - excess[:, best], se[:, [k, best]])
        for k in range(len(heads) - 1)
        for best in [k + 1 + int(np.argmin(means[k + 1 :]))]
    ]
    suffices = [gain.upper < margin for gain in gains] + [True]
    first = suffices.index(True)
    minimal, settled = int(heads[first]), all(gain.lower > margin for gain in gains[:first])
    found = {"minimal": minimal, "settled": settled}
    if first < position:
        gain = gains[first]
        why = f"n_heads {minimal} suffices: more heads gain {gain.mean:.2g} nats, 95% upper bound {gain.upper:.2g}"
        return HeadsDecision("refuted", f"{why} < margin {margin:.2g}", deciding=(gain,), **found)
    own = gains[position] if position < len(gains) else None
    if own is not None and own.lower > margin:
        why = f"n_heads {value} does not suffice: more heads gain {own.mean:.2g} nats, 95% lower bound"
        return HeadsDecision("refuted", f"{why} {own.lower:.2g} > margin {margin:.2g}", deciding=(own,), **found)
    fewer = [position - 1, position]
    needed = seed_mean(excess[:, fewer[0]] - excess[:, position], se[:, fewer]) if position else None
    deciding = tuple(mean for mean in (own, needed) if mean is not None)
    suffice = (
        f"more heads gain {own.mean:.2g} nats (95% upper bound {own.upper:.2g}, margin {margin:.2g})"
        if own
        else f"n_heads {value} is the grid's largest"
    )
    need = (
        f"n_heads {heads[position - 1]} loses {needed.mean:.2g} nats (95% lower bound {needed.lower:.2g})"
        if needed
        else f"n_heads {value} is the grid's smallest"
    )
    if suffices[position] and (needed is None or needed.lower > 0):
        return HeadsDecision("confirmed", f"n_heads {value} suffices: {suffice}; {need}", deciding=deciding, **found)
    open_questions = ([] if suffices[position] else [f"whether n_heads {value} suffices: {suffice}"]) + (
        [f"whether fewer heads are worse: {need}"] if needed is not None and needed.lower <= 0 else []
    )
    return HeadsDecision("unresolved", "; ".join(open_questions), deciding=deciding, **found)


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
        raise ArtifactError("the hmm store's attrs lack config.hmm.eval_sequences (for a power statement)") from None


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
    best = np.where(finite, np.min(np.where(finite[:, None], normalised, np.inf), axis=1), np.nan)
    learned = best <= rule.unlearned_excess
    usable = finite & learned & converged_seeds(point)

    older = float(point["factor_older_info"].min())
    measured_gain = float(np.mean(nats[usable, 0] - nats[usable].min(axis=1))) if usable.any() else np.nan
    stakes = float(np.fmax(older, measured_gain))
    margin = rule.margin * stakes
    minimal = np.where(finite, _smallest_sufficient(np.nan_to_num(nats), heads, margin), 0)
    per_seed_minimal = [int(m) if ok else None for m, ok in zip(minimal, finite, strict=True)]
    measured = Measured(
        outcomes=outcomes(minimal == value, finite=finite, learned=learned),
        observed=f"each seed's own {counts(per_seed_minimal)}; best normalised excess {spread(best[usable])}",
        explain={
            "confirmed": f"{value} is that seed's smallest n_heads within the margin of every larger one",
            "refuted": f"{value} is not that seed's smallest n_heads within the margin of every larger one",
            "unlearned": f"best {_unlearned_text(rule)}" + (f" (lowest {np.nanmin(best):.3g})" if finite.any() else ""),
            "missing": "excess_loss, excess_loss_se or normalised_excess is NaN for some n_heads",
        },
        predicted_note=f" [stakes {stakes:.2g} nats, margin {margin:.2g} nats]" if np.isfinite(margin) else "",
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
    observed = f"{decision.observed} over {usable.sum()} seeds"
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


def _split_parity(curves: np.ndarray, parity_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """(whether each curve favours one parity by ``parity_ratio``, the favoured parity: 0 even, 1 odd)."""
    contrast = parity_contrast(curves)
    return np.abs(contrast) >= np.log(parity_ratio), np.where(contrast > 0, 0, 1)


def _head_rates(point: xr.Dataset, parity_ratio: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per seed and head (S, H): fitted rate, CI low, CI high, and whether the head is parity-split.

    A parity-split head has no meaningful rate over all distances (the other parity sits near zero), so
    its rate is the fit over the parity it favours; every other head keeps the fit over all distances."""
    split, favoured = _split_parity(per_seed_heads(point["attention_distance"], point, "distance"), parity_ratio)

    def pick(full: str, by_parity: str) -> np.ndarray:
        parity = per_seed_heads(point[by_parity].sel(parity=_PARITIES), point, "parity")
        on_favoured = np.take_along_axis(parity, favoured[..., None], axis=-1)[..., 0]
        return np.where(split, on_favoured, per_seed_heads(point[full], point))

    return (
        pick("decay_rate", "decay_rate_parity"),
        pick("decay_ci_low", "decay_parity_ci_low"),
        pick("decay_ci_high", "decay_parity_ci_high"),
        split,
    )


def _plateau_head_rates(curves: np.ndarray, parity_ratio: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The same four (S, H) arrays as :func:`_head_rates`, fitted on attention curves (S, H, distance) seen at
    one evaluation step during training (distances >= 1; a parity-split head on its favoured parity)."""
    split, favoured = _split_parity(curves, parity_ratio)
    fits = np.full((3, *curves.shape[:2]), np.nan)
    distances = np.arange(curves.shape[-1])
    for seed, head in np.ndindex(*curves.shape[:2]):
        curve = curves[seed, head]
        if not np.isfinite(curve).all():
            continue
        if split[seed, head]:
            by_parity = fit_decay_by_parity(curve, distances)
            fit = by_parity.even if favoured[seed, head] == 0 else by_parity.odd
        else:
            fit = fit_decay(curve, distances)
        fits[:, seed, head] = fit.rate, fit.ci_low, fit.ci_high
    return fits[0], fits[1], fits[2], split


@dataclass(frozen=True)
class _RateMatch:
    """Per seed: whether every target rate is matched, whether one is missed, the matched heads' rates
    (S, target) and whether each target slot was ever met by a parity-split head."""

    matched: np.ndarray
    missed: np.ndarray
    assigned: np.ndarray
    parity_used: np.ndarray

    @property
    def judgement(self) -> np.ndarray:
        """confirmed | refuted | unresolved per seed."""
        return np.where(self.missed, "refuted", np.where(self.matched, "confirmed", "unresolved"))


def _match_rates(rate, low, high, split, targets: np.ndarray, tolerance: float) -> _RateMatch:
    """Match heads to target rates per seed by the assignment with the smallest total difference; a rate
    matches when its head's CI lies inside rate ± tolerance and misses when the CI lies wholly outside.

    Each target gets its own head; only a model with fewer heads than targets shares them (every head
    must then have a fit), as one head serving two factors that forget alike."""
    band_low, band_high = targets - tolerance, targets + tolerance
    seeds, heads = rate.shape
    shared = heads < targets.size
    result = _RateMatch(
        np.zeros(seeds, dtype=bool),
        np.zeros(seeds, dtype=bool),
        np.full((seeds, targets.size), np.nan),
        np.zeros(targets.size, dtype=bool),
    )
    for seed in range(seeds):
        fitted = np.flatnonzero(np.isfinite(rate[seed]) & np.isfinite(low[seed]) & np.isfinite(high[seed]))
        if fitted.size < min(targets.size, heads):
            continue
        candidates = (
            itertools.product(fitted, repeat=targets.size) if shared else itertools.permutations(fitted, targets.size)
        )
        order = list(min(candidates, key=lambda chosen: np.abs(rate[seed, list(chosen)] - targets).sum()))
        result.assigned[seed] = rate[seed, order]
        result.parity_used[:] |= split[seed, order]
        inside = (low[seed, order] >= band_low) & (high[seed, order] <= band_high)
        outside = (high[seed, order] < band_low) | (low[seed, order] > band_high)
        result.matched[seed], result.missed[seed] = inside.all(), outside.any()
    return result


@dataclass(frozen=True)
class _DecayTargets:
    """What a decay quantity matches the heads to: one rate per slot with the band's half-width, how the
    texts name a slot (``slot``, e.g. "predicted rate") and its value (``value``, e.g. "rate"), per-slot
    labels for the observed column (none: unlabelled), the rates the heads may match instead with what that
    would mean, and the variables whose NaN makes the measurement missing."""

    rates: np.ndarray
    tolerance: float
    slot: str
    value: str
    labels: tuple[str, ...]
    instead: np.ndarray
    instead_note: str
    needs: str


def _filter_rates(point: xr.Dataset) -> np.ndarray:
    """Each factor's exact-filter effective decay r_eff: the geometric mean of its per-step ratios."""
    return geometric_mean(point["factor_filter_decay"].transpose("factor", "step").values)


def _lambdas(point: xr.Dataset) -> np.ndarray:
    """The two factors' eigenvalues at this condition."""
    return np.array([float(point[f"lambda{factor}"]) for factor in (1, 2)])


def _filter_note(point: xr.Dataset) -> str:
    """' [lambda -> filter r_eff: 0.7 -> 0.32, ...]': each factor's eigenvalue beside its filter's decay."""
    pairs = ", ".join(f"{lam:g} -> {r:.2f}" for lam, r in zip(_lambdas(point), _filter_rates(point), strict=True))
    return f" [lambda -> filter r_eff: {pairs}]"


def _decay_flips(point: xr.Dataset, rule: Rule, targets: _DecayTargets, final: np.ndarray) -> np.ndarray:
    """Per seed, whether the decay fitted on ``eval_attention`` at an evaluation step of the plateau gives
    the definite judgement opposite to the ``final`` one (steps where every head of the row recorded)."""
    curves = per_seed_heads(point["eval_attention"], point, "eval_step", "distance")  # (S, H, T, D)
    flips = np.zeros(curves.shape[0], dtype=bool)
    definite = np.isin(final, ("confirmed", "refuted"))
    for step in plateau_steps(np.isfinite(curves).all(axis=(0, 1, 3))):
        rates = _plateau_head_rates(curves[:, :, step], rule.parity_ratio)
        there = _match_rates(*rates, targets.rates, targets.tolerance).judgement
        flips |= definite & np.isin(there, ("confirmed", "refuted")) & (there != final)
    return flips


def _matched_decay(point: xr.Dataset, rule: Rule, targets: _DecayTargets) -> Measured:
    """Judge each seed by matching its heads' fitted decay to ``targets`` (CI inside / wholly outside the
    band), re-checked on the attention recorded over the plateau."""
    rate, low, high, split = _head_rates(point, rule.parity_ratio)
    match = _match_rates(rate, low, high, split, targets.rates, targets.tolerance)
    means = np.array(
        [np.mean(column[np.isfinite(column)]) if np.isfinite(column).any() else np.nan for column in match.assigned.T]
    )
    like_instead = all(np.any(np.abs(mean - targets.instead) <= targets.tolerance) for mean in means)
    slots = [
        (f"{targets.labels[slot]}: " if targets.labels else "")
        + spread(match.assigned[:, slot]).replace(" (", " [parity fit] (" if match.parity_used[slot] else " (", 1)
        for slot in range(len(means))
    ]
    finite, learned = _learned(point, rule)
    finite &= bool(np.isfinite(targets.rates).all())
    widest = float(np.nanmax(high - low) / 2) if np.isfinite(high - low).any() else np.nan
    band = f"{targets.value} ± {targets.tolerance:g}"
    return Measured(
        outcomes=outcomes(
            match.matched & ~match.missed,
            finite=finite,
            learned=learned,
            resolved=match.matched | match.missed,
            flips=_decay_flips(point, rule, targets, match.judgement),
        ),
        observed="; ".join(slots),
        explain={
            "confirmed": f"every {targets.slot} is matched by a head whose CI lies inside {band}",
            "refuted": f"the head matched to a {targets.slot} has its CI wholly outside {band}"
            + (f"; {targets.instead_note}" if like_instead else ""),
            "unlearned": _unlearned_text(rule),
            "unresolved": "a head has no decay fit or its CI straddles the tolerance band",
            "flips": "the decay fitted on the attention at an earlier evaluation step of the plateau gives the "
            "opposite judgement",
            "missing": f"{targets.needs} is NaN",
        },
        power={
            "unresolved": f"a decay CI (widest half-width {widest:.2g}) straddles {band}: needs "
            "CIs narrower than the distance of each fitted rate from the band's edge (more evaluation "
            "sequences narrow them as 1/sqrt(sequences); a head with no fit has too little attention beyond "
            "distance 1)"
        },
        predicted_note=_filter_note(point),
    )


def _decay_rate(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> Measured:
    targets = _DecayTargets(
        rates=np.asarray(rule.value),
        tolerance=rule.tolerance,
        slot="predicted rate",
        value="rate",
        labels=(),
        instead=_filter_rates(point),
        instead_note="the rates match the exact filter's r_eff instead (the lambda law belongs to weak emissions)",
        needs="normalised_excess",
    )
    return _matched_decay(point, rule, targets)


# -------------------------------------------------------------------------------- filter_decay


def _filter_band(rule: Rule) -> float:
    """The tolerance band of a filter_decay rule: its value, with op '<=' (|fitted - r_eff| <= band)."""
    band = rule.value
    if rule.op != "<=" or not isinstance(band, float) or not 0 < band < 1:
        raise ValueError(
            f"filter_decay needs rule op '<=' and value a tolerance band in (0, 1), got {rule.op} {band!r}"
        )
    return band


def _filter_decay(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> Measured:
    targets = _DecayTargets(
        rates=_filter_rates(point),
        tolerance=_filter_band(rule),
        slot="factor's filter r_eff",
        value="r_eff",
        labels=("factor 1", "factor 2"),
        instead=np.abs(_lambdas(point)),
        instead_note="the rates match |lambda| instead",
        needs="normalised_excess or factor_filter_decay",
    )
    return _matched_decay(point, rule, targets)


def matched_factor_rates(point: xr.Dataset, parity_ratio: float) -> np.ndarray:
    """(seed, factor): the fitted decay of the head matched to each factor's filter r_eff, as filter_decay
    matches them (NaN where a seed's heads lack fits); the decay_phase figure draws these."""
    rate, low, high, split = _head_rates(point, parity_ratio)
    return _match_rates(rate, low, high, split, _filter_rates(point), tolerance=0.0).assigned


# -------------------------------------------------------------------------------- parity_split


def _parity_split(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> Measured:
    curves = per_seed_heads(point["attention_distance"], point, "distance")
    contrast = parity_contrast(curves)
    count = _split_parity(curves, rule.parity_ratio)[0].sum(axis=1)
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
        power={"unresolved": _damage_power(float(np.nanmin(total)), float(np.nanmax(se)), rule, store)},
    )


def _geometry(value: str, what: str):
    """A per-seed measurement of the factored geometry: ``value(point)`` gives one number per seed."""

    def measure(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> Measured:
        values = _GEOMETRY[value](point)
        finite, learned = _learned(point, rule)
        return Measured(
            outcomes=outcomes(np.array([rule.holds(v) for v in values]), finite=finite & np.isfinite(values), learned=learned),
            observed=spread(values),
            explain={**judged(what, rule), "unlearned": _unlearned_text(rule), "missing": f"{what} is NaN"},
        )

    return measure


def _head_loading(point: xr.Dataset) -> np.ndarray:
    """Per seed, the weakest head's share of its factor-subspace variance on the factor it loads on most."""
    share = per_seed_heads(point["head_factor_share"], point, "factor")  # (S, heads, F)
    loading = share.max(axis=2) / share.sum(axis=2)
    return loading.min(axis=1)


_GEOMETRY = {
    "overlap": lambda point: per_seed(point["factor_overlap"]),
    "dimension": lambda point: per_seed(point["belief_dimension"]) - float(point["factored_dimension"]),
    "loading": _head_loading,
}


def _damage_power(damage: float, se: float, rule: Rule, store: xr.Dataset) -> str:
    """What would resolve the smallest factor damage: a paired SE of damage / resolution_factor."""
    if not damage > 0:
        return "undecidable: ablating the heads does not damage a factor, so there is no share to compare"
    target = damage / rule.resolution_factor
    sequences = _evaluation_sequences(store)
    return (
        f"smallest factor damage {damage:.2g} nats; needs paired SE ≤ {target:.2g} per model, now {se:.2g} "
        f"(≈ {sequences_needed(sequences, se, target):,} evaluation sequences, now {sequences:,})"
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
        variables=(
            *_POINT,
            "excess_loss",
            "excess_loss_se",
            "context_gain",
            "factor_older_info",
            "eval_metric",
            "eval_metric_se",
        ),
        measure=_minimal_heads,
        integer=True,
        sweeps_heads=True,
        requires=("condition",),
        rule_note=lambda rule: f" (margin {rule.margin:g} x stakes)",
        verdict="""
            compares the converged seeds' models across n_heads by their paired excess loss over the exact
            filter (nats, `excess_loss`). The stakes are the loss an extra head could gain: the larger of the
            smaller factor's older-token information and the measured gain over the fewest heads; the
            equivalence margin is `margin` x stakes (0.5 by default). k heads suffice when the gain from more
            heads - excess(k) minus the excess of the n_heads > k with the lowest mean, paired by seed - has a
            one-sided 95% Student-t upper bound below the margin (the grid's largest n_heads suffices by
            default); k heads are needed when excess(k-1) - excess(k) has a one-sided 95% lower bound above 0.
            Each bound uses the between-seed SD of the paired differences / sqrt(n) with n-1 degrees of
            freedom, never below the SE the per-model paired SEs alone imply. The observed minimal n_heads is
            the smallest that suffices. Confirmed when the predicted n_heads suffices and one fewer is needed
            (or it is the grid's smallest); refuted when fewer heads suffice or the gain from more heads has
            a lower bound above the margin. Inconclusive when neither is shown (the power column gives the
            seeds and evaluation sequences that would bring the bounds to half the margin); when the same
            statistics on the held-out convergence batch (`eval_metric`) at an earlier evaluation step of the
            plateau give the opposite verdict (flips within the plateau); when the best n_heads' mean excess
            is at least the stakes (undecidable: no model comes close enough to the filter to show what an
            extra head adds); or when """
        + _UNLEARNED
        + """. The agreement column counts the seeds whose own smallest n_heads within the margin of every
            larger one is the predicted one.
        """,
    ),
    Quantity(
        name="decay_rate",
        task="hmm",
        variables=(*_POINT, *_DECAY, "eval_attention"),
        measure=_decay_rate,
        rates=True,
        heads=1,
        requires=("condition",),
        verdict="""
            heads are matched to the predicted rates by the assignment with the smallest total difference;
            a rate matches when its fitted CI lies inside rate ± tolerance and misses when the CI lies wholly
            outside. A parity-split head is fitted on the parity it favours. Inconclusive when a head has no
            fit or a decay CI straddles the tolerance band; when the same judgement on the decay fitted to the
            attention recorded at an earlier evaluation step of the plateau (`eval_attention`, distances
            >= 1) is the opposite one (flips within the plateau); or when """
        + _UNLEARNED
        + """. The exact filter's effective decay r_eff is printed beside lambda: at strong emissions it is
            faster than lambda.
        """,
    ),
    Quantity(
        name="filter_decay",
        task="hmm",
        variables=(*_POINT, *_DECAY, "eval_attention"),
        measure=_filter_decay,
        heads=1,
        requires=("condition",),
        rule_note=lambda rule: " (|fitted decay - the factor's filter r_eff|)",
        verdict="""
            the rule's value is a tolerance band (op '<='). Each factor's target is the exact filter's effective
            decay r_eff at the model's condition and a: the geometric mean over distance steps n of
            S(n+1)/S(n), S(n) the mean total-variation change of the filter's next-token prediction when the
            token at distance n is resampled (`factor_filter_decay`). Heads are matched to the factors and
            judged as for decay_rate, with r_eff in place of the predicted rates; a model with fewer heads
            than factors shares its heads between them. Inconclusive in the same cases as decay_rate, or when
            r_eff is NaN. The refuted reason says when the heads match |lambda| instead; the filter reaches
            |lambda| only as a approaches 1/3.
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
            below `resolution_factor` x paired SE (the power column gives the evaluation sequences that
            would resolve it; paired SE scales as 1/sqrt(sequences)), or when """
        + _UNLEARNED
        + ".",
    ),
    Quantity(
        name="factor_overlap",
        task="hmm",
        variables=(*_POINT, "factor_overlap"),
        measure=_geometry("overlap", "the factors' subspace overlap"),
        verdict="""
            overlap of the two factors' belief subspaces in the final residual stream: the mean squared cosine
            of their principal angles (0: orthogonal, 1: one inside the other), each subspace being where the
            least-squares map from that factor's exact belief to the activations writes it. Inconclusive
            when """
        + _UNLEARNED
        + ".",
    ),
    Quantity(
        name="belief_dimension_excess",
        task="hmm",
        variables=(*_POINT, "belief_dimension", "factored_dimension"),
        measure=_geometry("dimension", "belief_dimension - factored_dimension"),
        verdict="""
            the joint belief read-out's effective dimension (principal directions of its fitted values keeping
            95% of its R^2) minus the factored count (the sum of the factors' belief dimensions); the product
            count would be larger. Inconclusive when """
        + _UNLEARNED
        + ".",
    ),
    Quantity(
        name="head_factor_loading",
        task="hmm",
        variables=(*_POINT, "head_factor_share"),
        measure=_geometry("loading", "the weakest head's loading on its main factor"),
        heads=2,
        verdict="""
            of each head's output variance inside the two factors' subspaces, the share on the factor it
            loads on most; the model's weakest head counts (0.5: no preference, 1: one factor only). An
            ablation-free answer to which head carries which factor. Inconclusive when """
        + _UNLEARNED
        + ".",
    ),
)
