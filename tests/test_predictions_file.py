"""The shipped predictions file states SCIENCE.md's claims and validates; malformed files fail in one clear line."""

from __future__ import annotations

import copy

import pytest
import yaml
from helpers.paths import PROJECT_ROOT

from headshare.predictions import (
    PREDICTIONS_FILE,
    PREDICTIONS_SCHEMA,
    PredictionError,
    load_predictions,
    validate_predictions,
)
from headshare.scoring import decision_rule, quantities
from headshare.tasks.hmm.processes import ProcessError, build_process


def shipped() -> dict:
    return yaml.safe_load(PREDICTIONS_FILE.read_text())


def by_claim(document: dict) -> dict[tuple[str, str], dict]:
    return {(str(e["condition"].get("condition", "")), e["quantity"]): e for e in document["predictions"]}


# The pre-registered claims of SCIENCE.md §1, §5, §6 written out by hand: (condition, quantity) -> value.
PREREGISTERED_HMM = {
    ("m3_0.7_m3_0.7", "minimal_heads"): 1,
    ("m3_0.7_m3_0.3", "minimal_heads"): 2,
    ("m3_0.7_m3_-0.3", "minimal_heads"): 3,
    ("m3_0.7_m3_-0.7", "minimal_heads"): 2,
    ("m3_0.7_m3_0.7", "decay_rate"): [0.7],
    ("m3_0.7_m3_0.3", "decay_rate"): [0.7, 0.3],
    ("m3_0.7_m3_-0.3", "decay_rate"): [0.7, 0.3, 0.3],
    ("m3_0.7_m3_-0.7", "decay_rate"): [0.7, 0.7],
    ("m3_0.7_m3_-0.3", "parity_split"): 1,
    ("m3_0.7_m3_-0.7", "parity_split"): 1,
}


def test_shipped_file_validates_and_is_versioned():
    document = load_predictions()
    assert isinstance(document["version"], int) and document["version"] >= 1
    assert len(document["written"]) == 10 and document["written"][4] == "-"
    assert {entry["quantity"] for entry in document["predictions"]} == set(quantities())


def test_shipped_file_states_every_preregistered_claim():
    claims = by_claim(load_predictions())
    for key, value in PREREGISTERED_HMM.items():
        assert claims[key]["role"] == "preregistered", key
        assert claims[key]["rule"]["value"] == value, key
    readoff = [
        e for e in load_predictions()["predictions"] if e["quantity"] in ("readoff_accuracy", "preference_inversion")
    ]
    pinned = {
        (e["quantity"], e["condition"]["n_heads"], str(e["condition"]["d_head"]))
        for e in readoff
        if e["role"] == "preregistered"
    }
    assert pinned == {
        ("readoff_accuracy", 1, "{'min': 4}"),
        ("readoff_accuracy", 2, "1"),
        ("preference_inversion", 2, "1"),
    }
    regression = {
        (e["quantity"], e["condition"]["attention"], e["rule"]["op"])
        for e in load_predictions()["predictions"]
        if e["quantity"] in ("regression_loss_ratio", "gradient_cosine") and e["role"] == "preregistered"
    }
    assert regression == {
        ("regression_loss_ratio", "linear", "=="),
        ("gradient_cosine", "linear", ">="),
        ("regression_loss_ratio", "softmax", ">"),
    }


def test_infeasible_condition_really_cannot_be_built_and_names_its_substitutes():
    with pytest.raises(ProcessError, match="-1/2"):
        build_process("mess3", -0.7, 0.85)
    document = load_predictions()
    infeasible = [e for e in document["predictions"] if "infeasible" in e]
    assert {e["condition"]["condition"] for e in infeasible} == {"m3_0.7_m3_-0.7"}
    assert all(e["substitutes"] == ["m3_0.5_m3_-0.5", "ts_0.7_ts_-0.7"] for e in infeasible)
    substitutes = by_claim(document)
    for condition in ("m3_0.5_m3_-0.5", "ts_0.7_ts_-0.7"):
        for quantity, value in (("minimal_heads", 2), ("parity_split", 1)):
            entry = substitutes[(condition, quantity)]
            assert entry["role"] == "substitute" and entry["rule"]["value"] == value
            assert "infeasible" in by_id(document)[entry["substitute_for"]]
    assert substitutes[("m3_0.5_m3_-0.5", "decay_rate")]["rule"]["value"] == [0.5, 0.5]


def by_id(document: dict) -> dict[str, dict]:
    return {entry["id"]: entry for entry in document["predictions"]}


def test_conditions_exist_in_the_default_config_with_the_same_role_or_as_extensions():
    """A claim keeps its condition's role, except an extension claim, which may test any condition."""
    config = yaml.safe_load((PROJECT_ROOT / "config.yaml").read_text())
    roles = {condition["id"]: condition["role"] for condition in config["hmm"]["conditions"]}
    for entry in load_predictions()["predictions"]:
        named = entry["condition"].get("condition")
        if named is None or "infeasible" in entry:
            continue
        for condition in named if isinstance(named, list) else [named]:
            assert condition in roles, entry["id"]
            assert entry["role"] == "extension" or roles[condition] == entry["role"], entry["id"]


def test_quantity_and_axis_names_live_in_the_registries_not_the_schema():
    schema = yaml.safe_load(PREDICTIONS_SCHEMA.read_text())
    entry = schema["$defs"]["prediction"]["properties"]
    assert "properties" not in entry["condition"]
    assert not any("enum" in entry[key] for key in ("quantity", "figure"))


def test_header_points_to_the_verdict_rules_instead_of_restating_them():
    header = PREDICTIONS_FILE.read_text().split("\nversion:")[0]
    assert "results/scores.md" in header and "README.md" in header
    assert not any(verdict in header for verdict in ("confirmed", "refuted", "inconclusive", "seed_majority"))


def test_defaults_fill_rules_and_entries_may_override():
    document = shipped()
    del document["defaults"]
    document["predictions"][0]["rule"]["margin"] = 0.05
    validated = validate_predictions(document)
    first, second = (decision_rule(validated, entry) for entry in validated["predictions"][:2])
    assert (first.margin, second.margin) == (0.05, 0.5)
    assert (second.seed_majority, second.unlearned_excess, second.resolution_factor) == (0.5, 0.2, 3.0)
    assert second.value == (0.7,) and second.tolerance == 0.05


def test_unquoted_date_is_accepted(tmp_path):
    path = tmp_path / "mine.yaml"
    written = load_predictions(PREDICTIONS_FILE)["written"]
    unquoted = PREDICTIONS_FILE.read_text().replace(f'written: "{written}"', f"written: {written}")
    assert unquoted != PREDICTIONS_FILE.read_text()
    path.write_text(unquoted)
    assert load_predictions(path)["written"] == written


def test_invalid_yaml_is_one_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("predictions: [\n")
    with pytest.raises(PredictionError, match=r"broken\.yaml: not valid YAML") as error:
        load_predictions(path)
    assert "\n" not in str(error.value)


def changed(path: str, value) -> dict:
    """The shipped document with one value replaced (or deleted); path like 'predictions.0.rule.op'."""
    document = copy.deepcopy(shipped())
    *parents, leaf = path.split(".")
    node = document
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    key = int(leaf) if leaf.isdigit() else leaf
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    return document


DELETE = object()
# predictions[0]: minimal_heads on m3_0.7_m3_0.7; [1]: decay_rate with n_heads 1; [8]: the infeasible one;
# [11]: a substitute; [25]: readoff_accuracy.
MALFORMED = [
    ("predictions.0.id", DELETE, r"predictions\[0\]: 'id' is a required property"),
    (
        "predictions.0.quantity",
        "loss_curvature",
        r"quantity 'loss_curvature' is not registered; registered: minimal_heads, .*gradient_cosine",
    ),
    ("predictions.1.id", "hmm-0.7-0.7-heads", r"predictions\[1\] \(hmm-0.7-0.7-heads\): duplicate id"),
    ("predictions.1.rule.tolerance", "0.05", r"rule\.tolerance = '0\.05'.*not of type 'number'"),
    ("predictions.0.rule.value", "one", r"rule\.value = 'one'.*not of type 'number', 'array'"),
    ("predictions.0.rule.op", "~=", r"rule\.op = '~='.*'=='"),
    (
        "predictions.0.condition.temperature",
        1.0,
        (
            r"selector 'temperature' does not apply to minimal_heads \(the hmm store's axes: condition, n_layers, "
            r"n_heads, d_head, a, loss\)"
        ),
    ),
    (
        "predictions.0.condition.attention",
        "linear",
        r"selector 'attention' does not apply to minimal_heads",
    ),
    ("predictions.0.condition.seed", 0, r"selector 'seed' does not apply to minimal_heads"),
    ("predictions.0.condition.loss", {"every": 1}, r"'every' was unexpected"),
    ("predictions.0.condition.condition", DELETE, r"minimal_heads needs condition\.condition"),
    ("predictions.0.condition.d_head", {"min": 8, "max": 4}, r"condition\.d_head range has min 8 > max 4"),
    ("predictions.0.condition.d_head", {"low": 4}, r"'low' was unexpected"),
    ("predictions.0.condition.n_heads", 2, r"minimal_heads compares n_heads; give condition\.n_heads as a list"),
    ("predictions.0.rule.value", 1.5, r"whole number of heads, got 1\.5"),
    ("predictions.0.rule.value", [1, 2], r"must be one number, got the list \[1, 2\]"),
    (
        "predictions.1.condition.n_heads",
        DELETE,
        r"decay_rate needs condition\.n_heads pinned to one integer >= 1, got None",
    ),
    ("predictions.1.condition.n_heads", [1, 2], r"decay_rate needs condition\.n_heads pinned"),
    ("predictions.1.rule.value", 0.7, r"decay_rate needs op '==' and value a list of per-head rates"),
    ("predictions.1.rule.value", [0.7, 0.3], r"predicts 2 rates but the models have 1 heads"),
    ("predictions.1.rule.value", [1.3], r"decay rates must lie in \(0, 1\]"),
    ("predictions.0.figure", "loss_plot", r"figure 'loss_plot' is not a figure of the hmm task; its figures: attention_decay"),
    ("predictions.0.figure", "readoff_accuracy", r"figure 'readoff_accuracy' is not a figure of the hmm task"),
    ("predictions.0.substitutes", ["ts_0.7_ts_-0.7"], r"substitutes are only allowed on an infeasible entry"),
    ("predictions.8.substitutes", ["m3_0.1_m3_0.1"], r"substitute condition 'm3_0.1_m3_0.1' is not the condition"),
    (
        "predictions.11.substitute_for",
        "hmm-0.7-0.7-heads",
        r"substitute_for 'hmm-0.7-0.7-heads' must name an infeasible",
    ),
    ("predictions.25.condition.condition", "m3_0.7_m3_0.7", r"selector 'condition' does not apply to readoff_accuracy"),
    ("predictions.0.role", "hunch", r"role = 'hunch'.*preregistered.*extension"),
    ("defaults.margin", 0.0, r"defaults\.margin = 0\.0.*less than or equal to the minimum of 0"),
    ("defaults.margin", 1.5, r"defaults\.margin = 1\.5.*greater than the maximum of 1"),
    ("defaults.seed_majority", 1.0, r"defaults\.seed_majority = 1\.0.*greater than or equal to the maximum of 1"),
    ("defaults.parity_ratio", 1, r"parity_ratio = 1.*exclusiveMinimum 1"),
    ("version", DELETE, r"'version' is a required property"),
    ("written", "22/11/2026", r"written = '22/11/2026'.*pattern"),
    ("predictions.0", "not an entry", r"predictions\[0\] = 'not an entry'.*not of type 'object'"),
    ("predictions", [], r"predictions = \[\].*minItems 1"),
]


@pytest.mark.parametrize(("path", "value", "message"), MALFORMED, ids=[f"{p}={v!r}"[:60] for p, v, _ in MALFORMED])
def test_malformed_predictions_fail_in_one_line(path, value, message):
    with pytest.raises(PredictionError, match=message) as error:
        validate_predictions(changed(path, value))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("document", [["a", "list"], "text", None])
def test_a_document_that_is_not_a_mapping_is_rejected(document):
    with pytest.raises(PredictionError, match="expected a mapping") as error:
        validate_predictions(document)
    assert "\n" not in str(error.value)


def test_shipped_entry_indices_used_above_are_the_intended_ones():
    entries = shipped()["predictions"]
    assert (entries[0]["quantity"], entries[1]["quantity"], entries[25]["quantity"]) == (
        "minimal_heads",
        "decay_rate",
        "readoff_accuracy",
    )
    assert "infeasible" in entries[8] and entries[11]["role"] == "substitute"
