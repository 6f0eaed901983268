"""Fuzzing the config and predictions schemas: every malformed document fails as one line naming its key.

Invalid variants are derived from the JSON schemas themselves (wrong types, values past a bound, NaN and
infinity, strings outside an enum or pattern, unknown and missing keys, nested garbage), so each one is
invalid by construction and its offending key path is known in advance. A second pair of tests replaces
values with arbitrary garbage: whatever the document, validation must either accept it or raise
ConfigError in one line - never another exception.
"""

from __future__ import annotations

import copy
import json
import math
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.paths import PROJECT_ROOT, SMOKE_CONFIG
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headshare.config import ConfigError, config_schema, validate_config
from headshare.predictions import (
    PREDICTIONS_FILE,
    PREDICTIONS_SCHEMA,
    PredictionError,
    validate_predictions,
)

FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
CASES: Counter[str] = Counter()  # examples run per test, printed at the end of the module (pytest -s)

KeyPath = tuple[str | int, ...]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def unaliased(document: Any) -> Any:
    """The document without YAML aliases, so that changing one key never changes another that shares it."""
    return json.loads(json.dumps(document))


BASE_CONFIG = unaliased(load_yaml(PROJECT_ROOT / "config.yaml"))
BASE_PREDICTIONS = unaliased(load_yaml(PREDICTIONS_FILE))


DOCUMENTS = {
    # name used in messages: (base document, schema, validator, error type); every variant is a fresh copy
    "config": (BASE_CONFIG, config_schema(), validate_config, ConfigError),
    "predictions": (BASE_PREDICTIONS, load_yaml(PREDICTIONS_SCHEMA), validate_predictions, PredictionError),
}


@pytest.fixture(scope="module", autouse=True)
def report_case_counts():
    yield
    print(f"\nfuzz cases run: {dict(CASES)} (total {sum(CASES.values())})")


# ----------------------------------------------------------------------------- documents and schemas


def render(name: str, path: KeyPath) -> str:
    """A key path as the validators print it: config.hmm.grid.n_heads[0]."""
    return name + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)


def node_at(document: Any, path: KeyPath) -> Any:
    for part in path:
        document = document[part]
    return document


def replaced(document: Any, path: KeyPath, value: Any) -> Any:
    changed = copy.deepcopy(document)
    node_at(changed, path[:-1])[path[-1]] = value
    return changed


def deleted(document: Any, path: KeyPath) -> Any:
    changed = copy.deepcopy(document)
    del node_at(changed, path[:-1])[path[-1]]
    return changed


def all_paths(document: Any, prefix: KeyPath = ()) -> list[KeyPath]:
    """Every key path in the document (containers and leaves), the root excluded."""
    if isinstance(document, dict):
        children = document.items()
    else:
        children = enumerate(document) if isinstance(document, list) else []
    paths = []
    for key, value in children:
        paths.append(prefix + (key,))
        paths.extend(all_paths(value, prefix + (key,)))
    return paths


def resolve(schema: dict, root: dict) -> dict:
    """The schema a value must satisfy, with references followed and allOf parts merged in."""
    while "$ref" in schema:
        schema = root["$defs"][schema["$ref"].removeprefix("#/$defs/")]
    if "allOf" in schema:
        merged = {key: value for part in schema["allOf"] for key, value in resolve(part, root).items()}
        schema = {**merged, **{key: value for key, value in schema.items() if key != "allOf"}}
    return schema


def schema_at(root: dict, path: KeyPath) -> dict:
    schema = resolve(root, root)
    for part in path:
        if isinstance(part, int):
            schema = schema["items"]
        else:
            schema = schema.get("properties", {}).get(part, schema.get("additionalProperties"))
        schema = resolve(schema, root)
    return schema


def json_type(value: Any) -> str:
    """The JSON type of a value, with the pipeline's strictness: 1.0 is no integer, NaN/inf no number."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number" if math.isfinite(value) else "non-finite"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def allowed_types(schema: dict) -> set[str]:
    if "oneOf" in schema:
        return set().union(*(allowed_types(branch) for branch in schema["oneOf"]))
    types = schema.get("type", [])
    types = {types} if isinstance(types, str) else set(types)
    return types | ({"integer"} if "number" in types else set())


# ----------------------------------------------------------------------------- invalid by construction

GARBAGE = [
    None, True, False, "text", "", [], [None], {}, {"nested": {"garbage": [1, {"x": None}]}},
    3, -7, 0, 2.5, 1.0, float("nan"), float("inf"), float("-inf"),
]
NON_FINITE = [float("nan"), float("inf"), float("-inf")]
keys = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)


def invalid_values(schema: dict, current: Any) -> st.SearchStrategy:
    """Values that violate ``schema`` on their own (not through a child), whatever the rest of the document."""
    types = allowed_types(schema)
    assert types, f"schema without a type: {schema}"
    options = [st.sampled_from([value for value in GARBAGE if json_type(value) not in types])]
    if types & {"integer", "number"}:
        options.append(st.sampled_from(NON_FINITE))  # also in GARBAGE, but drawn far more often here
        step = st.integers(1, 10**6) if "number" not in types else st.floats(1e-3, 1e6)
        if "minimum" in schema:
            options.append(step.map(lambda delta: schema["minimum"] - delta))
        if "maximum" in schema:
            options.append(step.map(lambda delta: schema["maximum"] + delta))
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            if bound in schema:
                options.append(st.just(schema[bound]))
    if "enum" in schema:
        options.append(keys.filter(lambda text: text not in schema["enum"]))
    if "pattern" in schema:
        options.append(keys.filter(lambda text: not re.search(schema["pattern"], text)))
        if isinstance(current, str):
            options.append(st.just(current + "\n"))  # Python's "$" matches before a final newline, JSON's not
    if schema.get("minLength", 0) >= 1:
        options.append(st.just(""))
    if isinstance(current, list):
        if schema.get("minItems", 0) >= 1:
            options.append(st.just([]))
        if "maxItems" in schema:
            options.append(st.just(current + [current[0]] * (schema["maxItems"] + 1 - len(current))))
        if schema.get("uniqueItems") and current:
            options.append(st.just(current + [current[0]]))
    return st.one_of(options)


@st.composite
def schema_violations(draw, name: str) -> tuple[Any, str, str]:
    """(a malformed document, the start its error message must have, a fragment it must contain)."""
    base, root, _, _ = DOCUMENTS[name]
    path = draw(st.sampled_from(all_paths(base)))
    value = node_at(base, path)
    schema = schema_at(root, path)
    kinds = ["value"]
    if isinstance(value, dict) and schema.get("additionalProperties") is False:
        kinds.append("unknown key")
    if isinstance(value, dict) and schema.get("required"):
        kinds.append("missing key")
    kind = draw(st.sampled_from(kinds))
    where = render(name, path)
    if kind == "unknown key":
        key = draw(keys.filter(lambda text: text not in schema.get("properties", {})))
        return replaced(base, path, {**value, key: draw(st.sampled_from(GARBAGE))}), where + ":", repr(key)
    if kind == "missing key":
        key = draw(st.sampled_from(schema["required"]))
        return deleted(base, path + (key,)), where + ":", f"{key!r} is a required property"
    return replaced(base, path, draw(invalid_values(schema, value))), where + " = ", ""


@st.composite
def config_rule_violations(draw) -> tuple[Any, str, str]:
    """What the schema cannot see: a duplicate condition id, or Mess3 below its eigenvalue bound -1/2."""
    conditions = BASE_CONFIG["hmm"]["conditions"]
    index = draw(st.integers(1, len(conditions) - 1))
    where = f"config.hmm.conditions[{index}] ("
    if draw(st.booleans()):
        earlier = conditions[draw(st.integers(0, index - 1))]["id"]
        return replaced(BASE_CONFIG, ("hmm", "conditions", index, "id"), earlier), where, "duplicate id"
    factor = draw(st.integers(0, 1))
    lam = draw(st.floats(-1.0, -0.5, exclude_max=True))
    document = replaced(BASE_CONFIG, ("hmm", "conditions", index, "factors", factor), {"kind": "mess3", "lambda": lam})
    return document, where, f".factors[{factor}]: Mess3 lambda={lam!r}"


@st.composite
def prediction_rule_violations(draw) -> tuple[Any, str, str]:
    """What the schema cannot see: duplicate ids, inverted selector ranges, decay rates outside (0, 1]."""
    entries = BASE_PREDICTIONS["predictions"]
    kind = draw(st.sampled_from(["duplicate", "range", "rates"]))
    if kind == "rates":
        index = draw(st.sampled_from([i for i, entry in enumerate(entries) if entry["quantity"] == "decay_rate"]))
    else:
        index = draw(st.integers(1, len(entries) - 1))
    where = f"predictions.predictions[{index}] ("
    if kind == "duplicate":
        earlier = entries[draw(st.integers(0, index - 1))]["id"]
        return replaced(BASE_PREDICTIONS, ("predictions", index, "id"), earlier), where, "duplicate id"
    if kind == "range":
        low = draw(st.integers(1, 63))
        high = draw(st.integers(low + 1, 64))
        selector = {**entries[index]["condition"], "d_head": {"min": high, "max": low}}
        document = replaced(BASE_PREDICTIONS, ("predictions", index, "condition"), selector)
        return document, where, "condition.d_head range"
    rate = draw(st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0, exclude_min=True)).filter(math.isfinite))
    value = [rate] + entries[index]["rule"]["value"][1:]
    document = replaced(BASE_PREDICTIONS, ("predictions", index, "rule", "value"), value)
    return document, where, "decay rates must lie in (0, 1]"


def assert_rejected(name: str, document: Any, start: str, fragment: str) -> None:
    _, _, validate, error_type = DOCUMENTS[name]
    with pytest.raises(error_type) as caught:
        validate(document)
    message = str(caught.value)
    assert "\n" not in message, message
    assert message.startswith(start), (start, message)
    assert fragment in message, (fragment, message)


@FUZZ
@given(case=st.one_of(schema_violations("config"), config_rule_violations()))
def test_every_malformed_config_fails_in_one_line_naming_its_key(case):
    CASES["malformed config"] += 1
    assert_rejected("config", *case)


@FUZZ
@given(case=st.one_of(schema_violations("predictions"), prediction_rule_violations()))
def test_every_malformed_predictions_file_fails_in_one_line_naming_its_key(case):
    CASES["malformed predictions"] += 1
    assert_rejected("predictions", *case)


# ----------------------------------------------------------------------------- arbitrary garbage

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3),
    max_leaves=8,
)


@st.composite
def garbled(draw, name: str) -> Any:
    """The base document with one key replaced by garbage, deleted, or joined by an unknown sibling."""
    base = DOCUMENTS[name][0]
    path = draw(st.sampled_from(all_paths(base)))
    action = draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "replace":
        return replaced(base, path, draw(json_values))
    if action == "delete":
        return deleted(base, path)
    changed = copy.deepcopy(base)
    parent = node_at(changed, path[:-1])
    if isinstance(parent, list):
        parent.append(draw(json_values))
    else:
        parent[draw(keys)] = draw(json_values)
    return changed


def assert_accepted_or_one_line(name: str, document: Any) -> None:
    _, _, validate, error_type = DOCUMENTS[name]
    try:
        validate(document)
    except error_type as error:
        message = str(error)
        assert "\n" not in message and message.startswith(name), message


@FUZZ
@given(document=garbled("config"))
def test_garbled_config_is_accepted_or_fails_in_one_line(document):
    CASES["garbled config"] += 1
    assert_accepted_or_one_line("config", document)


@FUZZ
@given(document=garbled("predictions"))
def test_garbled_predictions_file_is_accepted_or_fails_in_one_line(document):
    CASES["garbled predictions"] += 1
    assert_accepted_or_one_line("predictions", document)


# ----------------------------------------------------------------------------- through Snakemake

BAD_FILES = [
    ("training:\n  hmm: {lr: .nan}\n", "config.training.hmm.lr = nan"),
    ("hmm:\n  grid: {n_heads: [1, 2.0], d_head: [4], seeds: [0]}\n", "config.hmm.grid.n_heads[1] = 2.0"),
    ("model: {d_model: 16, depth: {nested: [garbage]}}\n", "config.model: Additional properties"),
]


@pytest.mark.parametrize(("text", "where"), BAD_FILES, ids=["nan", "float-heads", "unknown-key"])
def test_snakemake_dry_run_stops_on_a_bad_config_in_one_line(tmp_path: Path, text: str, where: str):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(PROJECT_ROOT / "Snakefile"), "--directory",
         str(tmp_path / "run"), "--configfile", str(SMOKE_CONFIG), str(bad), "--cores", "1", "-n"],
        capture_output=True, text=True, timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    [line] = [line for line in output.splitlines() if "invalid configuration" in line]
    assert line.startswith(f"headshare: invalid configuration: {where}"), line
