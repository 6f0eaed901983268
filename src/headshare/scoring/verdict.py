"""From per-seed judgements to a row's verdict, and the verdict rules as the score table and README print them.

The rules are written once: :data:`GENERAL_RULES` here, and each quantity's own paragraph in its
declaration. :func:`verdict_rules_markdown` assembles them.
"""

from __future__ import annotations

import textwrap
from collections import Counter

from headshare.scoring.quantity import Measured
from headshare.scoring.registry import quantities
from headshare.scoring.rule import Rule

VERDICTS = ("confirmed", "refuted", "inconclusive", "infeasible", "not run")

GENERAL_RULES = """\
Each row is one prediction at one grid point of the result stores; seeds are judged one by one and the
row takes the judgement that more than half of them share (`seed_majority` in the predictions file).

- **confirmed / refuted**: the rule holds / fails in that majority of seeds. Rules compare with a
  tolerance that sides with the measurement (`== v ± t` is |x - v| <= t; `> v` with tolerance t needs x > v + t).
- **inconclusive**: seeds disagree (no majority); the model never learned the task; the stakes lie below
  what the measurement resolves; or the measurement is missing (NaN). Each quantity below says when.
- **infeasible**: the condition cannot be built (the prediction says why and names its substitutes).
- **not run**: the condition or a selected grid value is absent from this run's config.

A model's heads are all its (layer, head) pairs.
"""

_INCONCLUSIVE = {
    "unlearned": "never learned the task",
    "unresolved": "below what the measurement resolves",
    "missing": "measurement missing",
}


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


def judge(measured: Measured, rule: Rule) -> tuple[str, str]:
    """The judgement more than ``seed_majority`` of the seeds share, else inconclusive (seeds disagree)."""
    tally = Counter(measured.outcomes)
    seeds = len(measured.outcomes)
    top, agreeing = tally.most_common(1)[0]
    if agreeing <= rule.seed_majority * seeds:
        listed = ", ".join(f"{count} {outcome}" for outcome, count in tally.most_common())
        return "inconclusive", f"seeds disagree ({listed} of {seeds} seeds)"
    why = measured.explain.get(top, "")
    if top in ("confirmed", "refuted"):
        return top, f"{agreeing}/{seeds} seeds: {why}"
    return "inconclusive", f"{_INCONCLUSIVE[top]} ({agreeing}/{seeds} seeds): {why}"
