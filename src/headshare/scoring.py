"""Score pre-registered predictions against the combined result stores (results/{hmm,readoff,regression}.zarr).

Every prediction names grid points, one measurement from a closed set (:data:`MEASURES`) and a declarative
rule. A selector axis left free gets one row per value in the store (so decay rates are scored at every
emission fidelity a separately). Within a row each seed is judged on its own, and the row's verdict is the
judgement more than ``seed_majority`` of the seeds share; :data:`VERDICT_RULES` states the rules as the
score table prints them.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from headshare.analysis.decay import geometric_mean, parity_contrast
from headshare.predictions import FAMILY_AXES, QUANTITIES, QuantitySpec, Rule, decision_rule
from headshare.store import ArtifactError

VERDICTS = ("confirmed", "refuted", "inconclusive", "infeasible", "not run")
COLUMNS = ("id", "role", "claim", "condition", "quantity", "predicted", "observed", "verdict", "reason", "figure")

VERDICT_RULES = """\
Each row is one prediction at one grid point of the result stores; seeds are judged one by one and the
row takes the judgement that more than half of them share (`seed_majority` in the predictions file).

- **confirmed / refuted**: the rule holds / fails in that majority of seeds. Rules compare with a
  tolerance that sides with the measurement (`== v ± t` is |x - v| <= t; `> v` with tolerance t needs x > v + t).
  - *minimal_heads*: per seed, the smallest n_heads whose paired normalised excess loss lies within
    `margin` of the best n_heads of that seed.
  - *decay_rate*: heads are matched to the predicted rates by the assignment with the smallest total
    difference; a rate matches when its fitted CI lies inside rate ± tolerance and misses when the CI lies
    wholly outside. A parity-split head is fitted on the parity it favours. The exact filter's effective
    decay r_eff is printed beside lambda: at strong emissions it is faster than lambda.
  - *parity_split*: heads whose attention on their favoured parity of d-s is at least `parity_ratio` times
    the other parity's, after removing the geometric decay.
  - *factor_separation*: mean share of each factor's ablation damage carried by its own head (best
    assignment): 1 is full separation, 1/n_heads identical heads.
- **inconclusive**: seeds disagree (no majority); the model never learned the task (normalised excess
  above `unlearned_excess`, readoff accuracy below `min_accuracy`, regression loss not below the zero
  predictor's); the stakes lie below what the measurement resolves (minimal_heads: the loss an extra head
  could gain - the larger of the smaller factor's older-token information and the measured gain over the
  fewest heads - is below max(margin x context gain, `resolution_factor` x paired SE); a decay CI straddles
  the tolerance band; ablation damage below `resolution_factor` x SE); or the measurement is missing (NaN).
- **infeasible**: the condition cannot be built (the prediction says why and names its substitutes).
- **not run**: the condition or a selected grid value is absent from this run's config.
"""

_INCONCLUSIVE = {
    "unlearned": "never learned the task",
    "unresolved": "below what the measurement resolves",
    "missing": "measurement missing",
}
_PARITIES = ["even", "odd"]


@dataclass(frozen=True)
class Measured:
    """One row's per-seed judgements (confirmed | refuted | unresolved | unlearned | missing) and texts."""

    outcomes: list[str]
    observed: str
    explain: dict[str, str]
    predicted_note: str = ""


class _NotRun(Exception):
    """The row needs grid values that this run's config does not have; the message says which."""


@dataclass(frozen=True)
class _Measure:
    variables: tuple[str, ...]
    function: Callable[[xr.Dataset, Rule, xr.Dataset], Measured] = field(repr=False)


def score(
    predictions: dict,
    hmm: xr.Dataset | None,
    readoff: xr.Dataset | None,
    regression: xr.Dataset | None,
) -> pd.DataFrame:
    """Verdict table for a validated predictions document; a store that was not produced is None."""
    stores = {"hmm": hmm, "readoff": readoff, "regression": regression}
    rows = [
        row
        for entry in predictions["predictions"]
        for row in _score_entry(entry, decision_rule(predictions, entry), stores[QUANTITIES[entry["quantity"]].family])
    ]
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table.attrs["predictions"] = f"version {predictions['version']}, written {predictions['written']}"
    return table


def write_scores(scores: pd.DataFrame, csv_path: str | Path, md_path: str | Path) -> None:
    """Write the verdict table as CSV and as markdown headed by the verdict rules and counts."""
    for path in (csv_path, md_path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    scores.to_csv(csv_path, index=False)
    counts = scores["verdict"].value_counts()
    tally = ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)
    lines = [
        "# Scored predictions",
        "",
        VERDICT_RULES,
        f"Predictions {scores.attrs.get('predictions', '(version unknown)')}. Verdicts: {tally or 'none'}.",
        "",
        "| " + " | ".join(scores.columns) + " |",
        "|" + "---|" * len(scores.columns),
        *("| " + " | ".join(_markdown_cell(value) for value in row) + " |" for row in scores.itertuples(index=False)),
    ]
    Path(md_path).write_text("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------------------- rows


def _score_entry(entry: dict, rule: Rule, store: xr.Dataset | None) -> list[dict]:
    quantity, selector = entry["quantity"], entry["condition"]
    spec = QUANTITIES[quantity]
    predicted = rule.describe() + (f" (margin {rule.margin:g})" if quantity == "minimal_heads" else "")

    def row(where: str, observed: str, verdict: str, reason: str, note: str = "") -> dict:
        return {
            "id": entry["id"],
            "role": entry.get("role", "preregistered"),
            "claim": entry["claim"],
            "condition": where,
            "quantity": quantity,
            "predicted": predicted + note,
            "observed": observed,
            "verdict": verdict,
            "reason": reason,
            "figure": entry["figure"],
        }

    if "infeasible" in entry:
        substitutes = entry.get("substitutes")
        instead = f"; tested instead on {', '.join(substitutes)}" if substitutes else ""
        return [row(_describe(selector), "—", "infeasible", entry["infeasible"] + instead)]
    if store is None:
        return [row(_describe(selector), "—", "not run", f"not in this run's config: no {spec.family} store")]
    measure = MEASURES[quantity]
    _require(store, spec, quantity, measure.variables)
    selections = _selections(store, selector, spec)
    if isinstance(selections, str):
        return [row(_describe(selector), "—", "not run", selections)]
    rows = []
    for selection in selections:
        try:
            measured = measure.function(store.sel(selection), rule, store)
        except _NotRun as reason:
            rows.append(row(_describe(selection), "—", "not run", str(reason)))
            continue
        verdict, reason = _verdict(measured, rule)
        rows.append(row(_describe(selection), measured.observed, verdict, reason, measured.predicted_note))
    return rows


def _verdict(measured: Measured, rule: Rule) -> tuple[str, str]:
    """The judgement more than ``seed_majority`` of the seeds share, else inconclusive (seeds disagree)."""
    counts = Counter(measured.outcomes)
    seeds = len(measured.outcomes)
    top, agreeing = counts.most_common(1)[0]
    if agreeing <= rule.seed_majority * seeds:
        tally = ", ".join(f"{count} {outcome}" for outcome, count in counts.most_common())
        return "inconclusive", f"seeds disagree ({tally} of {seeds} seeds)"
    why = measured.explain.get(top, "")
    if top in ("confirmed", "refuted"):
        return top, f"{agreeing}/{seeds} seeds: {why}"
    return "inconclusive", f"{_INCONCLUSIVE[top]} ({agreeing}/{seeds} seeds): {why}"


def _require(store: xr.Dataset, spec: QuantitySpec, quantity: str, variables: tuple[str, ...]) -> None:
    missing = [name for name in (*FAMILY_AXES[spec.family], "seed", *variables) if name not in store.variables]
    if missing:
        raise ArtifactError(f"the {spec.family} store lacks {', '.join(missing)}, needed to score {quantity}")


def _selections(store: xr.Dataset, selector: dict, spec: QuantitySpec) -> list[dict] | str:
    """Every grid point the selector picks, one per combination of the axes the quantity does not consume;
    a string saying what is absent when the selector picks nothing on some axis."""
    chosen: dict[str, list] = {}
    for axis in FAMILY_AXES[spec.family]:
        have = [value.item() if hasattr(value, "item") else value for value in store[axis].values]
        keep = [value for value in have if _selected(value, selector.get(axis))]
        if not keep:
            return (
                f"not in this run's config: {axis} {_format(selector[axis])} "
                f"(this run has {', '.join(_format(value) for value in have)})"
            )
        chosen[axis] = keep
    swept = {"n_heads": chosen.pop("n_heads")} if spec.sweeps_heads else {}
    return [{**dict(zip(chosen, combo)), **swept} for combo in itertools.product(*chosen.values())]


def _selected(value, selector) -> bool:
    if selector is None:
        return True
    if isinstance(selector, dict):
        return selector.get("min", -np.inf) <= value <= selector.get("max", np.inf)
    if isinstance(selector, list):
        return any(_selected(value, item) for item in selector)
    if isinstance(value, str) or isinstance(selector, str):
        return value == selector
    return bool(np.isclose(value, selector, rtol=1e-9, atol=1e-12))


def _describe(selection: dict) -> str:
    others = ", ".join(f"{key}={_format(value)}" for key, value in selection.items() if key != "condition")
    if "condition" not in selection:
        return others
    return selection["condition"] + (f" ({others})" if others else "")


def _format(value) -> str:
    if isinstance(value, list):
        return ",".join(_format(item) for item in value)
    if isinstance(value, dict):
        if "min" in value and "max" in value:
            return f"{value['min']:g}..{value['max']:g}"
        return f">={value['min']:g}" if "min" in value else f"<={value['max']:g}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _markdown_cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


# ------------------------------------------------------------------------------ shared pieces


def _per_seed(data: xr.DataArray, *dims: str) -> np.ndarray:
    """Values as a float array with seed first, then ``dims`` in that order."""
    return data.transpose("seed", *dims).values.astype(np.float64)


def _outcomes(
    holds: np.ndarray,
    *,
    finite: np.ndarray,
    learned: np.ndarray | None = None,
    resolved: np.ndarray | None = None,
) -> list[str]:
    """Per-seed judgements, the first that applies: missing, unlearned, unresolved, confirmed/refuted."""
    outcome = np.where(holds, "confirmed", "refuted").astype(object)
    if resolved is not None:
        outcome[~resolved] = "unresolved"
    if learned is not None:
        outcome[~learned] = "unlearned"
    outcome[~finite] = "missing"
    return list(outcome)


def _spread(values: np.ndarray) -> str:
    """'mean ± sd (k seeds)' over the finite values."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return "—"
    sd = round(float(values.std(ddof=1)), 6) if values.size > 1 else 0.0  # round away float noise
    return f"{values.mean():.4g} ± {sd:.2g} ({values.size} seed{'s' if values.size > 1 else ''})"


def _judged(what: str, rule: Rule) -> dict[str, str]:
    """Reasons for the two definite per-seed judgements."""
    return {"confirmed": f"{what} satisfies {rule.describe()}", "refuted": f"{what} fails {rule.describe()}"}


def _counts(values: list) -> str:
    """Most common per-seed value, then every seed's: '2 (per seed 2, 2, 3)'."""
    shown = [str(v) if v is not None else "—" for v in values]
    known = [v for v in shown if v != "—"]
    mode = Counter(known).most_common(1)[0][0] if known else "—"
    return f"{mode} (per seed {', '.join(shown)})"


def _hmm_learned(point: xr.Dataset, rule: Rule) -> tuple[np.ndarray, np.ndarray]:
    """(finite, learned) per seed from the paired normalised excess loss at this grid point."""
    excess = _per_seed(point["normalised_excess"])
    return np.isfinite(excess), excess <= rule.unlearned_excess


def _unlearned_text(rule: Rule) -> str:
    return f"normalised excess loss above {rule.unlearned_excess:g}"


# ------------------------------------------------------------------------------ measurements


def _minimal_heads(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> Measured:
    point = point.sortby("n_heads")
    heads = point["n_heads"].values.astype(int)
    if heads.size < 2:
        raise _NotRun(f"not in this run's config: minimal_heads compares n_heads, this run has only {heads[0]}")
    if not np.any(heads == rule.value):
        raise _NotRun(
            f"not in this run's config: the predicted {rule.value:g} heads (n_heads {', '.join(map(str, heads))})"
        )
    excess = _per_seed(point["normalised_excess"], "n_heads")
    finite = np.all(np.isfinite(excess), axis=1)
    best = np.where(finite, np.min(np.where(finite[:, None], excess, np.inf), axis=1), np.nan)
    minimal = heads[np.argmax(excess <= best[:, None] + rule.margin, axis=1)]

    nats = _per_seed(point["excess_loss"], "n_heads")[finite]
    measured_gain = float(np.mean(nats[:, 0] - nats.min(axis=1))) if nats.size else np.nan
    older = float(point["factor_older_info"].min())
    stakes = float(np.fmax(older, measured_gain))
    context_gain = float(point["context_gain"])
    se = float(point["excess_loss_se"].max())
    resolution = float(np.fmax(rule.margin * context_gain, rule.resolution_factor * se))

    per_seed = [int(m) if ok else None for m, ok in zip(minimal, finite)]
    return Measured(
        outcomes=_outcomes(
            np.array([rule.holds(m) for m in minimal]),
            finite=finite,
            learned=best <= rule.unlearned_excess,
            resolved=np.full(minimal.shape, stakes >= resolution),
        ),
        observed=f"{_counts(per_seed)}; best normalised excess {_spread(best)}",
        explain={
            **_judged(f"the smallest n_heads within {rule.margin:g} of the best normalised excess", rule),
            "unlearned": f"best {_unlearned_text(rule)} (lowest {np.nanmin(best):.3g})" if finite.any() else "",
            "unresolved": (
                f"an extra head can gain at most {stakes:.2g} nats (older-token information {older:.2g}, "
                f"measured gain {measured_gain:.2g}) < resolution {resolution:.2g} nats "
                f"(margin x context gain {context_gain:.3g}, {rule.resolution_factor:g} x paired SE {se:.2g})"
            ),
            "missing": "normalised_excess is NaN for some n_heads",
        },
    )


def _head_rates(point: xr.Dataset, rule: Rule) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per seed and head (S, H): fitted rate, CI low, CI high, and whether the head is parity-split.

    A parity-split head has no meaningful rate over all distances (the other parity sits near zero), so
    its rate is the fit over the parity it favours; every other head keeps the fit over all distances."""
    heads = slice(0, int(point["n_heads"]))
    contrast = parity_contrast(_per_seed(point["attention_distance"].isel(head=heads), "head", "distance"))
    split = np.abs(contrast) >= np.log(rule.parity_ratio)
    favoured = np.where(contrast > 0, 0, 1)[..., None]

    def pick(full: str, by_parity: str) -> np.ndarray:
        parity = _per_seed(point[by_parity].isel(head=heads).sel(parity=_PARITIES), "head", "parity")
        on_favoured = np.take_along_axis(parity, favoured, axis=-1)[..., 0]
        return np.where(split, on_favoured, _per_seed(point[full].isel(head=heads), "head"))

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
        _spread(assigned[:, slot]).replace(" (", " [parity fit] (" if parity_used[slot] else " (", 1)
        for slot in range(predicted.size)
    ]
    finite, learned = _hmm_learned(point, rule)
    return Measured(
        outcomes=_outcomes(matched & ~missed, finite=finite, learned=learned, resolved=matched | missed),
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


def _parity_split(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> Measured:
    heads = slice(0, int(point["n_heads"]))
    curves = _per_seed(point["attention_distance"].isel(head=heads), "head", "distance")
    contrast = parity_contrast(curves)
    count = (np.abs(contrast) >= np.log(rule.parity_ratio)).sum(axis=1)
    finite, learned = _hmm_learned(point, rule)
    finite &= np.isfinite(curves).all(axis=(1, 2))
    strongest = float(np.exp(np.nanmax(np.abs(contrast)))) if np.isfinite(contrast).any() else np.nan
    return Measured(
        outcomes=_outcomes(np.array([rule.holds(c) for c in count]), finite=finite, learned=learned),
        observed=f"{_counts([int(c) for c in count])}; strongest parity ratio {strongest:.3g}",
        explain={
            **_judged(f"the number of heads giving one parity >= {rule.parity_ratio:g}x the other's", rule),
            "unlearned": _unlearned_text(rule),
            "missing": "attention curves or normalised_excess are NaN",
        },
    )


def _factor_separation(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> Measured:
    heads = int(point["n_heads"])
    damage = _per_seed(point["ablation_factor_excess"].isel(head=slice(0, heads)), "head", "factor")
    damage = np.maximum(damage, 0.0)  # NaN stays NaN; a head whose ablation helps carries none of the factor
    total = damage.sum(axis=1)  # (S, F)
    share = damage / np.where(total > 0, total, np.nan)[:, None, :]
    factors = np.arange(share.shape[-1])
    separation = np.max(
        [share[:, list(order), factors].mean(axis=1) for order in itertools.permutations(range(heads), factors.size)],
        axis=0,
    )
    se = _per_seed(point["excess_loss_se"])
    resolved = total.min(axis=1) >= rule.resolution_factor * se
    finite, learned = _hmm_learned(point, rule)
    finite &= np.isfinite(damage).all(axis=(1, 2)) & np.isfinite(se)
    return Measured(
        outcomes=_outcomes(
            np.array([rule.holds(s) for s in separation]), finite=finite, learned=learned, resolved=resolved
        ),
        observed=_spread(separation),
        explain={
            **_judged("the mean share of each factor's ablation damage on its own head", rule),
            "unlearned": _unlearned_text(rule),
            "unresolved": (
                f"a factor's total ablation damage ({np.nanmin(total):.2g} nats) is below "
                f"{rule.resolution_factor:g} x paired SE ({np.nanmax(se):.2g})"
            ),
            "missing": "ablation_factor_excess, excess_loss_se or normalised_excess is NaN",
        },
    )


def _readoff_learned(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> tuple[np.ndarray, str]:
    return _per_seed(point["accuracy"]) >= rule.min_accuracy, f"readoff accuracy below {rule.min_accuracy:g}"


def _regression_learned(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> tuple[np.ndarray, str]:
    if "zero_loss" not in store.attrs:
        raise ArtifactError("the regression store lacks the zero_loss attribute, needed to tell if a model learned")
    zero = float(store.attrs["zero_loss"])
    return _per_seed(point["loss"]) < zero, f"loss not below the zero predictor's {zero:.4g}"


def _scalar(variable: str, learned: Callable | None = None) -> Callable[[xr.Dataset, Rule, xr.Dataset], Measured]:
    """A measurement read directly from one per-model variable of the store."""

    def measure(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> Measured:
        values = _per_seed(point[variable])
        is_learned, unlearned = learned(point, rule, store) if learned else (None, "")
        return Measured(
            outcomes=_outcomes(
                np.array([rule.holds(v) for v in values]), finite=np.isfinite(values), learned=is_learned
            ),
            observed=_spread(values),
            explain={**_judged(variable, rule), "unlearned": unlearned, "missing": f"{variable} is NaN"},
        )

    return measure


_HMM_POINT = ("normalised_excess",)
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

MEASURES: dict[str, _Measure] = {
    "minimal_heads": _Measure(
        (*_HMM_POINT, "excess_loss", "excess_loss_se", "context_gain", "factor_older_info"), _minimal_heads
    ),
    "decay_rate": _Measure((*_HMM_POINT, *_DECAY), _decay_rate),
    "parity_split": _Measure((*_HMM_POINT, "attention_distance"), _parity_split),
    "factor_separation": _Measure((*_HMM_POINT, "ablation_factor_excess", "excess_loss_se"), _factor_separation),
    "readoff_accuracy": _Measure(("accuracy",), _scalar("accuracy")),
    "preference_inversion": _Measure(("accuracy", "preference_tau"), _scalar("preference_tau", _readoff_learned)),
    "regression_loss_ratio": _Measure(("loss", "gd_loss_ratio"), _scalar("gd_loss_ratio", _regression_learned)),
    "gradient_cosine": _Measure(("loss", "gradient_cosine"), _scalar("gradient_cosine", _regression_learned)),
}
