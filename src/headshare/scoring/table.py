"""The verdict table: every prediction scored at every grid point it selects, written as CSV and markdown."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import xarray as xr

from headshare import tasks
from headshare.scoring import registry
from headshare.scoring.convergence import CONVERGENCE_VARIABLES, gate
from headshare.scoring.quantity import NotRun, Quantity
from headshare.scoring.rule import Rule, decision_rule
from headshare.scoring.selection import describe, selections
from headshare.scoring.verdict import VERDICTS, judge, verdict_rules_markdown
from headshare.store import ArtifactError

COLUMNS = (
    "id",
    "role",
    "claim",
    "condition",
    "quantity",
    "predicted",
    "observed",
    "verdict",
    "agreement",
    "reason",
    "power",
    "figure",
)
SEED_AXIS = "seed"


def score(predictions: dict, stores: dict[str, xr.Dataset | None]) -> pd.DataFrame:
    """Verdict table for a validated predictions document; ``stores`` maps each task name to its combined
    store, None (or no key) where this run did not produce it."""
    rows = []
    for entry in predictions["predictions"]:
        quantity = registry.get(entry["quantity"])
        rows += _score_entry(entry, quantity, decision_rule(predictions, entry), stores.get(quantity.task))
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
        verdict_rules_markdown(),
        f"Predictions {scores.attrs.get('predictions', '(version unknown)')}. Verdicts: {tally or 'none'}.",
        "",
        "| " + " | ".join(scores.columns) + " |",
        "|" + "---|" * len(scores.columns),
        *("| " + " | ".join(_markdown_cell(value) for value in row) + " |" for row in scores.itertuples(index=False)),
    ]
    Path(md_path).write_text("\n".join(lines) + "\n")


def selector_axes(quantity: Quantity) -> tuple[str, ...]:
    """The grid axes a prediction of ``quantity`` may select on: its task's, seeds being pooled."""
    return tuple(axis for axis in tasks.get(quantity.task).grid_axes if axis != SEED_AXIS)


def _score_entry(entry: dict, quantity: Quantity, rule: Rule, store: xr.Dataset | None) -> list[dict]:
    selector = entry["condition"]
    predicted = rule.describe() + quantity.rule_note(rule)

    def row(where: str, observed: str, verdict: str, reason: str, note: str = "", agreement: str = "—", power: str = "") -> dict:
        return {
            "id": entry["id"],
            "role": entry.get("role", "preregistered"),
            "claim": entry["claim"],
            "condition": where,
            "quantity": quantity.name,
            "predicted": predicted + note,
            "observed": observed,
            "verdict": verdict,
            "agreement": agreement,
            "reason": reason,
            "power": power,
            "figure": entry["figure"],
        }

    if "infeasible" in entry:
        substitutes = entry.get("substitutes")
        instead = f"; tested instead on {', '.join(substitutes)}" if substitutes else ""
        return [row(describe(selector), "—", "infeasible", entry["infeasible"] + instead)]
    if store is None:
        return [row(describe(selector), "—", "not run", f"not in this run's config: no {quantity.task} store")]
    axes = selector_axes(quantity)
    _require(store, quantity, (*axes, SEED_AXIS, *CONVERGENCE_VARIABLES, *quantity.variables))
    points = selections(store, selector, axes, swept=("n_heads",) if quantity.sweeps_heads else ())
    if isinstance(points, str):
        return [row(describe(selector), "—", "not run", points)]
    rows = []
    for point in points:
        point = _trained_part(store, point)
        if point is None:
            continue
        at = store.sel(point)
        try:
            measured = gate(quantity.measure(at, rule, store), at)
        except NotRun as reason:
            rows.append(row(describe(point), "—", "not run", str(reason)))
            continue
        judged = judge(measured, rule)
        rows.append(
            row(
                describe(point),
                measured.observed,
                judged.verdict,
                judged.reason,
                measured.predicted_note,
                judged.agreement,
                judged.power,
            )
        )
    if not rows:
        return [row(describe(selector), "—", "not run", "no grid of this run's config trains these models")]
    return rows


def _trained_part(store: xr.Dataset, point: dict) -> dict | None:
    """``point`` without the swept values no block of the config trained (a sparse ``extra_grids`` leaves
    NaN there); None when nothing at the point was trained, or only one value of a swept axis."""
    trained = store["steps_trained"].sel(point).notnull().any(SEED_AXIS)
    swept = [axis for axis, values in point.items() if isinstance(values, list)]
    if not swept:
        return point if bool(trained) else None
    (axis,) = swept
    kept = [value for value, ok in zip(point[axis], trained.transpose(axis).values) if ok]
    if not kept or (len(kept) == 1 < len(point[axis])):
        return None  # the sparse grid trains one value here: nothing to sweep (a store with one value says so)
    return {**point, axis: kept}


def _require(store: xr.Dataset, quantity: Quantity, names: tuple[str, ...]) -> None:
    missing = [name for name in names if name not in store.variables]
    if missing:
        raise ArtifactError(f"the {quantity.task} store lacks {', '.join(missing)}, needed to score {quantity.name}")


def _markdown_cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")
