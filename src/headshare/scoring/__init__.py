"""Score pre-registered predictions against the combined result stores (results/<task>.zarr).

Every prediction names grid points, one registered quantity and a declarative rule. Quantities are declared
in their task folders (:mod:`headshare.scoring.registry`); a selector axis left free gets one row per value
in the store; within a row each seed is judged on its own, and the row's verdict is the judgement more
than ``seed_majority`` of the seeds share (:func:`verdict_rules_markdown` states the rules).
"""

from headshare.scoring.quantity import Measured, NotRun, Quantity
from headshare.scoring.registry import quantities
from headshare.scoring.rule import Rule, decision_rule
from headshare.scoring.table import COLUMNS, score, selector_axes, write_scores
from headshare.scoring.verdict import VERDICTS, verdict_rules_markdown

__all__ = [
    "COLUMNS",
    "VERDICTS",
    "Measured",
    "NotRun",
    "Quantity",
    "Rule",
    "decision_rule",
    "quantities",
    "score",
    "selector_axes",
    "verdict_rules_markdown",
    "write_scores",
]
