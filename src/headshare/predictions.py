"""Pre-registered predictions: load the versioned file and validate it against the quantity registry.

The JSON schema (headshare/schemas/predictions.schema.yaml, shipped with the package) checks the shape of
each entry and fills the decision defaults; :func:`validate_predictions` adds what depends on the
registered quantities and their tasks - a known quantity, selectors on its task's grid axes, rule values of
the right shape for the quantity, a figure its task draws - plus unique ids and consistent infeasible/substitute cross-references,
and reports every failure as one line.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import yaml

from headshare import tasks
from headshare.config import SCHEMA_DIR, ConfigError, validate_against_schema
from headshare.figures import task_figures
from headshare.scoring import Quantity, quantities, selector_axes

PREDICTIONS_SCHEMA = SCHEMA_DIR / "predictions.schema.yaml"
PREDICTIONS_FILE = Path(__file__).resolve().parents[2] / "workflow" / "predictions.yaml"  # in a source checkout


class PredictionError(ConfigError):
    """The predictions file is malformed; the message is one line naming the entry and the key."""


def validate_predictions(document: object, name: str = "predictions") -> dict:
    """Check a loaded predictions document completely; returns it with defaults filled in."""
    if isinstance(document, dict) and isinstance(document.get("written"), datetime.date):
        document["written"] = document["written"].isoformat()  # YAML reads an unquoted date as a date
    try:
        validate_against_schema(document, PREDICTIONS_SCHEMA, name)  # type: ignore[arg-type]
    except ConfigError as error:
        raise PredictionError(str(error)) from None
    registered = quantities()
    entries = document["predictions"]  # type: ignore[index]
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"{name}.predictions[{index}] ({entry['id']})"
        if entry["id"] in seen:
            raise PredictionError(f"{where}: duplicate id {entry['id']!r}; prediction ids must be unique")
        seen.add(entry["id"])
        quantity = registered.get(entry["quantity"])
        if quantity is None:
            raise PredictionError(
                f"{where}: quantity {entry['quantity']!r} is not registered; registered: {', '.join(registered)}"
            )
        _check_selectors(entry, quantity, where)
        _check_rule(entry, quantity, where)
        _check_figure(entry, quantity, where)
    _check_cross_references(entries, name)
    return document  # type: ignore[return-value]


def load_predictions(path: str | Path = PREDICTIONS_FILE) -> dict:
    """Read and validate a predictions YAML file."""
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise PredictionError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    return validate_predictions(document, path.name)


def _check_selectors(entry: dict, quantity: Quantity, where: str) -> None:
    selector = entry["condition"]
    axes = selector_axes(quantity)
    for key, value in selector.items():
        if key not in axes:
            raise PredictionError(
                f"{where}: selector {key!r} does not apply to {quantity.name} "
                f"(the {quantity.task} store's axes: {', '.join(axes)})"
            )
        if isinstance(value, dict) and "min" in value and "max" in value and value["min"] > value["max"]:
            raise PredictionError(f"{where}: condition.{key} range has min {value['min']} > max {value['max']}")
    for axis in quantity.requires:
        if axis not in selector:
            raise PredictionError(f"{where}: {quantity.name} needs condition.{axis}")
    if quantity.sweeps_heads and isinstance(selector.get("n_heads"), int):
        raise PredictionError(
            f"{where}: {quantity.name} compares n_heads; give condition.n_heads as a list or range, or leave it out"
        )
    if quantity.heads:
        heads = selector.get("n_heads")
        if not isinstance(heads, int) or heads < quantity.heads:
            raise PredictionError(
                f"{where}: {quantity.name} needs condition.n_heads pinned to one integer >= {quantity.heads}, "
                f"got {heads!r}"
            )


def _check_rule(entry: dict, quantity: Quantity, where: str) -> None:
    rule, value = entry["rule"], entry["rule"]["value"]
    if quantity.rates:
        if not isinstance(value, list) or rule["op"] != "==":
            raise PredictionError(
                f"{where}: {quantity.name} needs op '==' and value a list of per-head rates, "
                f"got {rule['op']} {value!r}"
            )
        if not all(0 < rate <= 1 for rate in value):
            raise PredictionError(f"{where}: rule.value {value!r}: decay rates must lie in (0, 1]")
        heads = _fewest_heads(entry["condition"])
        if len(value) > heads:
            raise PredictionError(
                f"{where}: rule.value predicts {len(value)} rates but the models have {heads} heads "
                f"(n_layers x n_heads)"
            )
        return
    if isinstance(value, list):
        raise PredictionError(f"{where}: rule.value for {quantity.name} must be one number, got the list {value!r}")
    if quantity.integer and value != int(value):
        raise PredictionError(f"{where}: rule.value for {quantity.name} must be a whole number of heads, got {value!r}")


def _fewest_heads(selector: dict) -> int:
    """The fewest (layer, head) pairs a selected model has: n_heads times the pinned n_layers (else 1 layer)."""
    layers = selector.get("n_layers")
    return selector["n_heads"] * (layers if isinstance(layers, int) else 1)


def _check_figure(entry: dict, quantity: Quantity, where: str) -> None:
    drawn = [spec.name for spec in task_figures(tasks.get(quantity.task))]
    if entry["figure"] not in drawn:
        raise PredictionError(
            f"{where}: figure {entry['figure']!r} is not a figure of the {quantity.task} task; "
            f"its figures: {', '.join(drawn)}"
        )


def _check_cross_references(entries: list[dict], name: str) -> None:
    by_id = {entry["id"]: entry for entry in entries}
    named = (entry["condition"].get("condition") for entry in entries)
    conditions = {condition for condition in named if isinstance(condition, str)}  # ids, not lists or ranges
    for index, entry in enumerate(entries):
        where = f"{name}.predictions[{index}] ({entry['id']})"
        if "substitutes" in entry and "infeasible" not in entry:
            raise PredictionError(f"{where}: substitutes are only allowed on an infeasible entry")
        for substitute in entry.get("substitutes", []):
            if substitute not in conditions or substitute == entry["condition"].get("condition"):
                raise PredictionError(
                    f"{where}: substitute condition {substitute!r} is not the condition of any other prediction"
                )
        target = entry.get("substitute_for")
        if target is not None and "infeasible" not in by_id.get(target, {}):
            raise PredictionError(f"{where}: substitute_for {target!r} must name an infeasible prediction's id")
