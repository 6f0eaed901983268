"""Experiment configuration: schema validation with one-line errors, defaults filled in.

The config's schema is assembled from the base schema (headshare/schemas/config.schema.yaml: results,
device, model, training, ...) and one section per registered task (each task folder's schema.yaml), so a
new task brings its own section. :func:`validate_config` checks types, ranges and allowed values, fills
defaults, then runs each task's own checks (what a schema cannot express, such as process eigenvalue
bounds) and turns every failure into a single line naming the key and the allowed values.
"""

from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

SCHEMA_DIR = Path(__file__).with_name("schemas")
BASE_SCHEMA = SCHEMA_DIR / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration value is out of its allowed range; the message is one line."""


def describe_schema_error(error: Any, document: str = "config") -> str:
    """One line for a jsonschema ValidationError: where, what value, what is allowed."""
    where = document + "".join(_path_part(part) for part in error.absolute_path)
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


def _path_part(part: Any) -> str:
    """One step of a config path: [index], .key, or ['key'] for a key that would not read as one (empty,
    spaces at its ends, newlines or other unprintable characters), so a message stays on one line."""
    if isinstance(part, int):
        return f"[{part}]"
    text = str(part)
    return f".{text}" if text and text.isprintable() and text.strip() == text else f"[{text!r}]"


def _strict_validator_class() -> Any:
    """A validator class that means what a schema says. Plain jsonschema counts 1.0 as an integer, lets NaN
    and infinity through every bound (NaN compares false) and reads a pattern's "$" the Python way, which
    also matches before a final newline; so 2.0 heads, a NaN learning rate or the id "m3\\n" would pass."""
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
    return jsonschema.validators.extend(base, {"pattern": pattern}, type_checker=checker)


def _defaults_filler_class() -> Any:
    """A validator class that also fills each missing property that has a default (in place)."""
    import jsonschema

    strict = _strict_validator_class()
    check_properties = strict.VALIDATORS["properties"]

    def fill_then_check(validator: Any, properties: dict, instance: Any, schema: dict) -> Iterator[Any]:
        if validator.is_type(instance, "object"):
            for name, subschema in properties.items():
                if isinstance(subschema, dict) and "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from check_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(strict, {"properties": fill_then_check})


@functools.cache
def load_schema(path: Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def validate_against_schema(document: Any, schema: Path | dict, name: str) -> dict:
    """Validate ``document`` in place against ``schema`` (a dict or a YAML file) and fill its defaults."""
    if not isinstance(document, dict):
        raise ConfigError(f"{name}: expected a mapping of keys to values, got {type(document).__name__}")
    schema = load_schema(schema) if isinstance(schema, Path) else schema
    error = next(_strict_validator_class()(schema).iter_errors(document), None)
    if error is None:
        error = next(_defaults_filler_class()(schema).iter_errors(document), None)
    if error is not None:
        raise ConfigError(describe_schema_error(error, name))
    return document


def config_schema() -> dict:
    """The whole config schema: the base schema plus one section per registered task."""
    from headshare import tasks

    schema = copy.deepcopy(load_schema(BASE_SCHEMA))
    for task in tasks.all_tasks():
        schema["properties"][task.name] = task.schema()
    return schema


def validate_config(config: Any) -> dict:
    """Check a loaded config completely before any job runs; returns it with defaults filled in."""
    from headshare import tasks

    if isinstance(config, dict):
        _load_task_packages(config.get("task_packages", []))
    validate_against_schema(config, config_schema(), "config")
    active = tasks.active(config)
    if not active:
        names = ", ".join(task.name for task in tasks.all_tasks())
        raise ConfigError(f"config: no task section; give at least one of: {names}")
    for task in active:
        if task.name not in config["training"]:
            raise ConfigError(f"config.training: no settings for task {task.name!r} (config has a {task.name} section)")
        task.validate(config)
    return config


def _load_task_packages(packages: Any) -> None:
    from headshare import tasks

    if not isinstance(packages, list) or not all(isinstance(package, str) for package in packages):
        raise ConfigError(f"config.task_packages = {packages!r} is invalid: expected a list of module names")
    try:
        tasks.load(packages)
    except ImportError as error:
        raise ConfigError(f"config.{error}") from None


def load_config(path: str | Path) -> dict:
    """Read and validate a YAML config file."""
    with open(path) as handle:
        try:
            config = yaml.safe_load(handle)
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    return validate_config(config)
