"""What a scoring quantity declares, and the toolkit its measurement uses to judge each seed.

A task folder's ``quantities.py`` lists its quantities in ``QUANTITIES``; :mod:`headshare.scoring.registry`
finds them. A measurement sees one grid point of the task's combined store (every grid axis selected except
``seed``, and ``n_heads`` for a quantity that compares head counts) and returns one judgement per seed
(:data:`SEED_OUTCOMES`; the engine then marks seeds whose models did not converge) and, for a quantity that
compares models across seeds, the row's verdict from that comparison (:class:`Pooled`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from headshare.scoring.rule import Rule

SEED_OUTCOMES = ("confirmed", "refuted", "unresolved", "flips", "unlearned", "unconverged", "missing")


@dataclass(frozen=True)
class Pooled:
    """A row's verdict from a comparison across seeds: confirmed | refuted | unresolved | flips | undecidable,
    why, and (when it does not decide) what would."""

    verdict: str
    reason: str
    power: str = ""


@dataclass(frozen=True)
class Measured:
    """One row's per-seed judgements (one of :data:`SEED_OUTCOMES` each), the texts that explain them, and
    per inconclusive judgement what would decide it (``power``). ``pooled`` is set by quantities that judge
    the row across seeds; the per-seed judgements then only say how many seeds agree."""

    outcomes: list[str]
    observed: str
    explain: dict[str, str]
    predicted_note: str = ""
    power: dict[str, str] = field(default_factory=dict)
    pooled: Pooled | None = None


class NotRun(Exception):
    """The row needs grid values that this run's config does not have; the message says which."""


Measure = Callable[[xr.Dataset, Rule, xr.Dataset], Measured]


def _no_note(rule: Rule) -> str:
    return ""


@dataclass(frozen=True)
class Quantity:
    """One scoring quantity, declared once in its task's folder.

    ``measure(point, rule, store)`` judges one grid point; ``variables`` are the store variables (and
    coordinates) it reads; ``verdict`` is the paragraph of the verdict rules that says how it is measured
    and judged. Rule-shape constraints, checked when the predictions file is loaded: ``rates`` - the rule's
    value is a list of per-head decay rates (compared with '==' and a tolerance); ``integer`` - the value
    is a count; ``heads`` - 0 when n_heads may stay free, else the selector must pin n_heads to one value of
    at least this; ``sweeps_heads`` - the measurement compares n_heads itself; ``requires`` - selector axes
    an entry must name. ``rule_note`` adds rule parameters the predicted column should show.
    """

    name: str
    task: str
    variables: tuple[str, ...]
    measure: Measure = field(repr=False)
    verdict: str
    rates: bool = False
    integer: bool = False
    heads: int = 0
    sweeps_heads: bool = False
    requires: tuple[str, ...] = ()
    rule_note: Callable[[Rule], str] = field(default=_no_note, repr=False)


# ------------------------------------------------------------------------------ per-seed toolkit


def per_seed(data: xr.DataArray, *dims: str) -> np.ndarray:
    """Values as a float array with seed first, then ``dims`` in that order."""
    return data.transpose("seed", *dims).values.astype(np.float64)


def per_seed_heads(data: xr.DataArray, point: xr.Dataset, *dims: str) -> np.ndarray:
    """(seed, model head, *dims): every (layer, head) pair of the model at ``point``, layer by layer.

    Stores pad ``layer`` and ``head`` with NaN beyond a model's n_layers and n_heads; the model's own
    heads are the first n_layers x n_heads pairs, so a 1-layer model's heads are layer 0's, in order."""
    layers, heads = int(point["n_layers"]), int(point["n_heads"])
    own = per_seed(data.isel(layer=slice(0, layers), head=slice(0, heads)), "layer", "head", *dims)
    return own.reshape(own.shape[0], layers * heads, *own.shape[3:])


def outcomes(
    holds: np.ndarray,
    *,
    finite: np.ndarray,
    learned: np.ndarray | None = None,
    resolved: np.ndarray | None = None,
    flips: np.ndarray | None = None,
) -> list[str]:
    """Per-seed judgements, the first that applies: missing, unlearned, flips (within the plateau),
    unresolved, confirmed/refuted."""
    outcome = np.where(holds, "confirmed", "refuted").astype(object)
    if resolved is not None:
        outcome[~resolved] = "unresolved"
    if flips is not None:
        outcome[flips] = "flips"
    if learned is not None:
        outcome[~learned] = "unlearned"
    outcome[~finite] = "missing"
    return list(outcome)


def spread(values: np.ndarray) -> str:
    """'mean ± sd (k seeds)' over the finite values."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return "—"
    sd = round(float(values.std(ddof=1)), 6) if values.size > 1 else 0.0  # round away float noise
    return f"{values.mean():.4g} ± {sd:.2g} ({values.size} seed{'s' if values.size > 1 else ''})"


def judged(what: str, rule: Rule) -> dict[str, str]:
    """Reasons for the two definite per-seed judgements."""
    return {"confirmed": f"{what} satisfies {rule.describe()}", "refuted": f"{what} fails {rule.describe()}"}


def counts(values: list) -> str:
    """Most common per-seed value, then every seed's: '2 (per seed 2, 2, 3)'."""
    shown = [str(v) if v is not None else "—" for v in values]
    known = [v for v in shown if v != "—"]
    mode = Counter(known).most_common(1)[0][0] if known else "—"
    return f"{mode} (per seed {', '.join(shown)})"


def scalar(variable: str, learned: Callable[[xr.Dataset, Rule, xr.Dataset], tuple[np.ndarray, str]] | None = None) -> Measure:
    """A measurement read directly from one per-model variable of the store; ``learned`` gives (per-seed
    whether the model learned the task, the text saying why not)."""

    def measure(point: xr.Dataset, rule: Rule, store: xr.Dataset) -> Measured:
        values = per_seed(point[variable])
        is_learned, unlearned = learned(point, rule, store) if learned else (None, "")
        return Measured(
            outcomes=outcomes(np.array([rule.holds(v) for v in values]), finite=np.isfinite(values), learned=is_learned),
            observed=spread(values),
            explain={**judged(variable, rule), "unlearned": unlearned, "missing": f"{variable} is NaN"},
        )

    return measure
