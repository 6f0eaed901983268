"""Experiment configuration: schema validation with one-line errors, and the grids it defines.

The JSON schema (workflow/schemas/config.schema.yaml) checks types, ranges and allowed values and fills
defaults; :func:`validate_config` adds what a schema cannot express (process eigenvalue bounds, unique
condition ids) and turns every failure into a single line naming the key and the allowed values.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from headshare.processes import HMM, ProcessError, build_process, product

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "workflow" / "schemas"
CONFIG_SCHEMA = SCHEMA_DIR / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration value is out of its allowed range; the message is one line."""


def describe_schema_error(error: Any, document: str = "config") -> str:
    """One line for a jsonschema ValidationError: where, what value, what is allowed."""
    where = document + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
    allowed = {
        key: error.schema[key]
        for key in ("type", "enum", "minimum", "maximum", "exclusiveMinimum", "pattern", "minItems", "maxItems")
        if isinstance(error.schema, dict) and key in error.schema
    }
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        return f"{where}: {error.message}; allowed keys: {', '.join(known)}"
    if error.validator == "required":
        return f"{where}: {error.message}"
    detail = ", ".join(f"{key} {value}" for key, value in allowed.items())
    return f"{where} = {error.instance!r} is invalid: {error.message}" + (f" (allowed: {detail})" if detail else "")


@functools.cache
def strict_validator(schema: Path) -> Any:
    """A validator of ``schema`` that means what the schema says. Plain jsonschema counts 1.0 as an integer,
    lets NaN and infinity through every bound (NaN compares false) and reads a pattern's "$" the Python way,
    which also matches before a final newline; so 2.0 heads, a NaN learning rate or the id "m3\\n" would pass."""
    import jsonschema

    def is_integer(_: Any, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def is_number(_: Any, value: Any) -> bool:
        return is_integer(_, value) or (isinstance(value, float) and math.isfinite(value))

    def pattern(validator: Any, regex: str, instance: Any, _: dict) -> Iterator[Any]:
        if validator.is_type(instance, "string") and not re.search(re.sub(r"(?<!\\)\$", r"\\Z", regex), instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {regex!r}")

    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine_many({"integer": is_integer, "number": is_number})
    strict = jsonschema.validators.extend(base, {"pattern": pattern}, type_checker=checker)
    return strict(yaml.safe_load(schema.read_text()))


def validate_against_schema(document: dict, schema: Path, name: str) -> dict:
    """Validate ``document`` in place with the strict validator, then let Snakemake's fill the defaults."""
    import jsonschema
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    if not isinstance(document, dict):
        raise ConfigError(f"{name}: expected a mapping of keys to values, got {type(document).__name__}")
    error = next(strict_validator(schema).iter_errors(document), None)
    if error is not None:
        raise ConfigError(describe_schema_error(error, name))
    try:
        validate(document, str(schema), set_default=True)
    except WorkflowError as error:
        cause = error.__context__  # Snakemake raises its WorkflowError while handling jsonschema's error
        if not isinstance(cause, jsonschema.ValidationError):
            raise ConfigError(f"{name}: {str(error).splitlines()[0]}") from None
        raise ConfigError(describe_schema_error(cause, name)) from None
    return document


def validate_config(config: dict) -> dict:
    """Check a loaded config completely before any job runs; returns it with defaults filled in."""
    validate_against_schema(config, CONFIG_SCHEMA, "config")
    seen: set[str] = set()
    for index, condition in enumerate(config["hmm"]["conditions"]):
        where = f"config.hmm.conditions[{index}] ({condition['id']})"
        if condition["id"] in seen:
            raise ConfigError(f"{where}: duplicate id {condition['id']!r}; condition ids must be unique")
        seen.add(condition["id"])
        for position, factor in enumerate(condition["factors"]):
            for a in config["hmm"]["emission_fidelity"]:
                try:
                    build_process(factor["kind"], factor["lambda"], a)
                except ProcessError as error:
                    raise ConfigError(f"{where}.factors[{position}]: {error}") from None
    return config


def load_config(path: str | Path) -> dict:
    """Read and validate a YAML config file."""
    with open(path) as handle:
        try:
            config = yaml.safe_load(handle)
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    return validate_config(config)


@dataclass(frozen=True)
class Factor:
    kind: str
    lam: float


@dataclass(frozen=True)
class Condition:
    """One product-process condition: two independent factors interleaved as one token stream."""

    id: str
    role: str
    factors: tuple[Factor, Factor]

    def factor_processes(self, a: float) -> tuple[HMM, HMM]:
        return tuple(build_process(f.kind, f.lam, a) for f in self.factors)  # type: ignore[return-value]

    def process(self, a: float) -> HMM:
        return product(*self.factor_processes(a))


def hmm_conditions(config: dict) -> list[Condition]:
    return [
        Condition(
            id=entry["id"],
            role=entry.get("role", "preregistered"),
            factors=tuple(Factor(f["kind"], float(f["lambda"])) for f in entry["factors"]),  # type: ignore[arg-type]
        )
        for entry in config["hmm"]["conditions"]
    ]


def condition_by_id(config: dict, condition_id: str) -> Condition:
    for condition in hmm_conditions(config):
        if condition.id == condition_id:
            return condition
    raise ConfigError(f"unknown condition {condition_id!r}; known: {[c.id for c in hmm_conditions(config)]}")


def grid_points(grid: dict, axes: tuple[str, ...]) -> list[dict]:
    """Cartesian product of the named grid axes, in config order."""
    return [dict(zip(axes, values)) for values in itertools.product(*(grid[axis] for axis in axes))]
