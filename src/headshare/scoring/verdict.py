"""From per-seed judgements to a row's verdict, and the verdict rules as the score table and README print them.

The rules are written once: :data:`GENERAL_RULES` here, and each quantity's own paragraph in its
declaration. :func:`verdict_rules_markdown` assembles them.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from dataclasses import dataclass

from headshare.scoring.convergence import FLIP_POWER
from headshare.scoring.quantity import Measured
from headshare.scoring.registry import quantities
from headshare.scoring.rule import Rule

VERDICTS = ("confirmed", "refuted", "inconclusive", "infeasible", "not run")

GENERAL_RULES = """\
Each row is one prediction at one grid point of the result stores. Only models that converged count: every
model records while training whether it passed the convergence test before `max_steps` (`converged` in the
stores), and a seed with an unconverged model is judged "not converged", which neither confirms nor refutes.
Most quantities judge each seed on its own, and the row takes the judgement that more than half of all its
seeds share (`seed_majority` in the predictions file); minimal_heads compares the converged seeds' models
with each other, and needs more than half of the seeds converged. The `agreement` column counts the seeds
whose own judgement is the row's verdict; for an inconclusive row, the seeds sharing the most common
definite judgement.

- **confirmed / refuted**: the rule holds / fails in that majority of seeds (minimal_heads: by the
  statistics below). Rules compare with a tolerance that sides with the measurement (`== v ± t` is
  |x - v| <= t; `> v` with tolerance t needs x > v + t).
- **inconclusive**: too few seeds converged; seeds disagree (no majority); the verdict flips within the
  plateau (a quantity that re-checks itself at the earlier evaluation steps of the plateau, the last quarter
  of training, finds the opposite verdict there); the model never learned the task; the stakes lie below
  what the measurement resolves; or the measurement is missing (NaN). Each quantity below says when. The
  `power` column says what would decide the row: longer training, more seeds, more evaluation sequences
  (with the closed forms of `headshare.scoring.statistics`), or that the claim is undecidable here.
- **infeasible**: the condition cannot be built (the prediction says why and names its substitutes).
- **not run**: the condition or a selected grid value is absent from this run's config.

A model's heads are all its (layer, head) pairs.
"""

_INCONCLUSIVE = {
    "unconverged": "not converged",
    "flips": "flips within the plateau",
    "unlearned": "never learned the task",
    "unresolved": "below what the measurement resolves",
    "missing": "measurement missing",
}
_POWER = {
    "flips": FLIP_POWER,
    "unlearned": "undecidable with this model and training: the models converged without learning the task",
    "missing": "the measurement is missing (NaN): rerun the extraction of these models",
}
_DEFINITE = ("confirmed", "refuted")


@dataclass(frozen=True)
class Judgement:
    """A row's verdict, its reason, how many seeds agree with it, and what would decide it if inconclusive."""

    verdict: str
    reason: str
    agreement: str
    power: str = ""


def verdict_rules_markdown() -> str:
    """The verdict rules: the general rules, then how each registered quantity is measured and judged."""
    paragraphs = [
        textwrap.fill(
            f"- *{quantity.name}* ({quantity.task}): {' '.join(quantity.verdict.split())}",
            width=110,
            subsequent_indent="  ",
            break_on_hyphens=False,
        )
        for quantity in quantities().values()
    ]
    return GENERAL_RULES + "\nHow each quantity is measured and judged:\n\n" + "\n".join(paragraphs) + "\n"


def judge(measured: Measured, rule: Rule) -> Judgement:
    """The row's verdict: from the pooled comparison when the quantity makes one and more than
    ``seed_majority`` of the seeds are usable, else the definite judgement more than ``seed_majority`` of
    the seeds share; otherwise inconclusive, blaming the most common cause."""
    tally = Counter(measured.outcomes)
    seeds = len(measured.outcomes)
    definite = Counter({outcome: tally[outcome] for outcome in _DEFINITE if tally[outcome]})
    top, agreeing = definite.most_common(1)[0] if definite else ("", 0)
    enough = rule.seed_majority * seeds
    if measured.pooled is not None and sum(definite.values()) > enough:
        pooled = measured.pooled
        if pooled.verdict in _DEFINITE:
            return Judgement(pooled.verdict, pooled.reason, f"{tally[pooled.verdict]}/{seeds} seeds")
        return Judgement("inconclusive", pooled.reason, _agreement(top, agreeing, seeds), pooled.power)
    if measured.pooled is None and agreeing > enough:
        return Judgement(top, f"{agreeing}/{seeds} seeds: {measured.explain.get(top, '')}", f"{agreeing}/{seeds} seeds")
    return _inconclusive(measured, tally, definite, seeds, rule)


def _inconclusive(measured: Measured, tally: Counter, definite: Counter, seeds: int, rule: Rule) -> Judgement:
    """No majority: the most common non-definite judgement is the cause when it is more common than the
    most common definite one, else the seeds disagree."""
    top, agreeing = definite.most_common(1)[0] if definite else ("", 0)
    undecided = Counter({o: count for o, count in tally.items() if o not in _DEFINITE})
    agreement = _agreement(top, agreeing, seeds)
    if undecided and undecided.most_common(1)[0][1] > agreeing:
        cause, count = undecided.most_common(1)[0]
        others = ", ".join(f"{n} {_named(o)}" for o, n in tally.most_common() if o != cause)
        reason = f"{_INCONCLUSIVE[cause]} ({count}/{seeds} seeds): {measured.explain.get(cause, '')}"
        power = measured.power.get(cause) or _POWER.get(cause, "")
        return Judgement("inconclusive", reason + (f"; other seeds: {others}" if others else ""), agreement, power)
    listed = ", ".join(f"{count} {_named(outcome)}" for outcome, count in tally.most_common())
    power = (
        f"the outcome differs between seeds: more seeds estimate how often the claim holds; a verdict needs "
        f"more than {rule.seed_majority:g} of them to agree"
    )
    return Judgement("inconclusive", f"seeds disagree ({listed} of {seeds} seeds)", agreement, power)


def _agreement(outcome: str, count: int, seeds: int) -> str:
    return f"{count}/{seeds} seeds {outcome}" if outcome else f"0/{seeds} seeds"


def _named(outcome: str) -> str:
    return _INCONCLUSIVE.get(outcome, outcome) if outcome in ("unconverged", "flips") else outcome
