"""Pre-registered predictions: load the versioned file, validate it, and resolve each entry's decision rule.

The JSON schema (headshare/schemas/predictions.schema.yaml, shipped with the package) checks types and allowed values and fills the
decision defaults; :func:`validate_predictions` adds what a schema cannot express - unique ids, selectors
that exist in the quantity's store, rule values of the right shape for the quantity, and consistent
infeasible/substitute cross-references - and reports every failure as one line.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import yaml

from headshare.config import SCHEMA_DIR, ConfigError, validate_against_schema

PREDICTIONS_SCHEMA = SCHEMA_DIR / "predictions.schema.yaml"
PREDICTIONS_FILE = Path(__file__).resolve().parents[2] / "workflow" / "predictions.yaml"  # in a source checkout

# Grid axes of each combined store (results/<family>.zarr) that a selector may name; seeds are pooled.
FAMILY_AXES: dict[str, tuple[str, ...]] = {
    "hmm": ("condition", "a", "loss", "n_heads", "d_head"),
    "readoff": ("n_heads", "d_head"),
    "regression": ("attention", "n_heads", "d_head"),
}


@dataclass(frozen=True)
class QuantitySpec:
    """What a named measurement needs from its prediction entry.

    ``rates``: the rule's value is a list of per-head decay rates (compared with '==' and a tolerance).
    ``integer``: the value is a count. ``heads``: 0 when n_heads may stay free, else the selector must pin
    n_heads to one value of at least this. ``sweeps_heads``: the measurement compares n_heads itself.
    """

    family: str
    rates: bool = False
    integer: bool = False
    heads: int = 0
    sweeps_heads: bool = False


QUANTITIES: dict[str, QuantitySpec] = {
    "minimal_heads": QuantitySpec("hmm", integer=True, sweeps_heads=True),
    "decay_rate": QuantitySpec("hmm", rates=True, heads=1),
    "parity_split": QuantitySpec("hmm", integer=True, heads=1),
    "factor_separation": QuantitySpec("hmm", heads=2),
    "readoff_accuracy": QuantitySpec("readoff"),
    "preference_inversion": QuantitySpec("readoff", heads=2),
    "regression_loss_ratio": QuantitySpec("regression"),
    "gradient_cosine": QuantitySpec("regression"),
}


class PredictionError(ConfigError):
    """The predictions file is malformed; the message is one line naming the entry and the key."""


@dataclass(frozen=True)
class Rule:
    """An entry's decision rule with the file's defaults filled in (see the schema for each field)."""

    op: str
    value: float | tuple[float, ...]
    tolerance: float
    margin: float
    parity_ratio: float
    seed_majority: float
    unlearned_excess: float
    resolution_factor: float
    min_accuracy: float

    def holds(self, observed: float) -> bool:
        """Whether ``observed`` satisfies ``op value``; the tolerance widens '==', '<=', '>=' and makes
        '!=', '<', '>' demand a clear margin, so it always sides with the measurement's imprecision."""
        value, tol = float(self.value), self.tolerance  # type: ignore[arg-type]
        return {
            "==": abs(observed - value) <= tol,
            "!=": abs(observed - value) > tol,
            "<=": observed <= value + tol,
            "<": observed < value - tol,
            ">=": observed >= value - tol,
            ">": observed > value + tol,
        }[self.op]

    def describe(self) -> str:
        if isinstance(self.value, tuple):
            return f"{', '.join(f'{v:g}' for v in self.value)} ± {self.tolerance:g}"
        text = f"{self.op} {self.value:g}"
        return text + (f" (tolerance {self.tolerance:g})" if self.tolerance else "")


def decision_rule(document: dict, entry: dict) -> Rule:
    """The entry's rule merged over the file's defaults (a validated document has them all)."""
    merged = {**document["defaults"], **entry["rule"]}
    value = merged["value"]
    merged["value"] = tuple(float(v) for v in value) if isinstance(value, list) else float(value)
    return Rule(**merged)


def validate_predictions(document: object, name: str = "predictions") -> dict:
    """Check a loaded predictions document completely; returns it with defaults filled in."""
    if isinstance(document, dict) and isinstance(document.get("written"), datetime.date):
        document["written"] = document["written"].isoformat()  # YAML reads an unquoted date as a date
    try:
        validate_against_schema(document, PREDICTIONS_SCHEMA, name)  # type: ignore[arg-type]
    except ConfigError as error:
        raise PredictionError(str(error)) from None
    entries = document["predictions"]  # type: ignore[index]
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"{name}.predictions[{index}] ({entry['id']})"
        if entry["id"] in seen:
            raise PredictionError(f"{where}: duplicate id {entry['id']!r}; prediction ids must be unique")
        seen.add(entry["id"])
        _check_selectors(entry, where)
        _check_rule(entry, where)
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


def _check_selectors(entry: dict, where: str) -> None:
    spec = QUANTITIES[entry["quantity"]]
    selector = entry["condition"]
    axes = FAMILY_AXES[spec.family]
    for key, value in selector.items():
        if key not in axes:
            raise PredictionError(
                f"{where}: selector {key!r} does not apply to {entry['quantity']} "
                f"(the {spec.family} store's axes: {', '.join(axes)})"
            )
        if isinstance(value, dict) and "min" in value and "max" in value and value["min"] > value["max"]:
            raise PredictionError(f"{where}: condition.{key} range has min {value['min']} > max {value['max']}")
    if spec.family == "hmm" and "condition" not in selector:
        raise PredictionError(f"{where}: {entry['quantity']} needs condition.condition (a condition id)")
    if spec.sweeps_heads and isinstance(selector.get("n_heads"), int):
        raise PredictionError(
            f"{where}: {entry['quantity']} compares n_heads; give condition.n_heads as a list or range, or leave it out"
        )
    if spec.heads:
        heads = selector.get("n_heads")
        if not isinstance(heads, int) or heads < spec.heads:
            raise PredictionError(
                f"{where}: {entry['quantity']} needs condition.n_heads pinned to one integer >= {spec.heads}, "
                f"got {heads!r}"
            )


def _check_rule(entry: dict, where: str) -> None:
    spec = QUANTITIES[entry["quantity"]]
    rule, quantity = entry["rule"], entry["quantity"]
    value = rule["value"]
    if spec.rates:
        if not isinstance(value, list) or rule["op"] != "==":
            raise PredictionError(
                f"{where}: {quantity} needs op '==' and value a list of per-head rates, got {rule['op']} {value!r}"
            )
        if not all(0 < rate <= 1 for rate in value):
            raise PredictionError(f"{where}: rule.value {value!r}: decay rates must lie in (0, 1]")
        if len(value) > entry["condition"]["n_heads"]:
            raise PredictionError(
                f"{where}: rule.value predicts {len(value)} rates but n_heads is {entry['condition']['n_heads']}"
            )
        return
    if isinstance(value, list):
        raise PredictionError(f"{where}: rule.value for {quantity} must be one number, got the list {value!r}")
    if spec.integer and value != int(value):
        raise PredictionError(f"{where}: rule.value for {quantity} must be a whole number of heads, got {value!r}")


def _check_cross_references(entries: list[dict], name: str) -> None:
    by_id = {entry["id"]: entry for entry in entries}
    conditions = {entry["condition"].get("condition") for entry in entries}
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
