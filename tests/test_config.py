"""Config validation: the shipped configs pass, and every kind of bad value fails early in one clear line."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers.configs import deep_merge, default_config
from helpers.paths import PROJECT_ROOT, SMOKE_CONFIG

from headshare.config import ConfigError, load_config, validate_config


def test_shipped_configs_are_valid():
    config = load_config(PROJECT_ROOT / "config.yaml")
    assert config["hmm"]["eval_sequences"] > 0
    for extra in (SMOKE_CONFIG, PROJECT_ROOT / "workflow" / "configs" / "sweep.yaml"):
        validate_config(deep_merge(default_config(), yaml.safe_load(extra.read_text())))


def test_defaults_are_filled_in():
    config = default_config()
    del config["hmm"]["eval_sequences"]
    assert validate_config(config)["hmm"]["eval_sequences"] == 20000


def with_change(path: str, value) -> dict:
    """The default config with one value replaced; path like 'hmm.grid.n_heads'."""
    config = copy.deepcopy(default_config())
    *parents, leaf = path.split(".")
    node = config
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is DELETE:
        del node[leaf]
    else:
        node[int(leaf) if leaf.isdigit() else leaf] = value
    return config


DELETE = object()

BAD_VALUES = [
    ("hmm.conditions.0.factors.1.lambda", -0.7, r"-0\.7.*\[-0\.5, 1\].*trace"),
    ("hmm.conditions.0.factors.1.lambda", 1.5, r"1\.5.*maximum"),
    ("hmm.conditions.4.factors.0.lambda", -1.2, r"-1\.2.*minimum"),
    ("hmm.conditions.0.factors.0.kind", "mess4", r"'mess4'.*mess3.*two_state"),
    ("hmm.emission_fidelity", [0.85, 1.2], r"1\.2.*maximum 1"),
    ("hmm.emission_fidelity", [-0.1], r"-0\.1.*minimum 0"),
    ("hmm.loss_positions", ["every"], r"'every'.*all.*last"),
    ("hmm.grid.n_heads", [0, 1], r"n_heads\[0\] = 0.*minimum 1"),
    ("hmm.grid.d_head", "8", r"d_head = '8'.*array"),
    ("hmm.context", 40, r"context = 40.*maximum 12"),
    ("hmm.conditions.1.id", "m3_0.7_m3_0.7", r"duplicate id"),
    ("hmm.conditions.1.id", "has space", r"has space.*pattern"),
    ("hmm.bogus", 1, r"'bogus' was unexpected.*allowed keys"),
    ("hmm.extra_grids.0.conditions", ["nope"], r"extra_grids\[0\]\.conditions: unknown condition 'nope'.*m3_0\.7_m3_0\.7"),
    ("hmm.extra_grids.0.seeds", [9], r"extra_grids\[0\].*'seeds' was unexpected"),
    ("hmm.extra_grids.1.emission_fidelity", [1.5], r"1\.5.*maximum 1"),
    ("training.hmm.lr", 0, r"lr = 0.*exclusiveMinimum"),
    ("training.hmm.max_steps", DELETE, r"'max_steps' is a required property"),
    ("regression.grid.attention", ["quadratic"], r"quadratic.*linear.*softmax"),
    ("device", "tpu", r"'tpu'.*auto.*cpu.*cuda"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD_VALUES, ids=[case[0] for case in BAD_VALUES])
def test_bad_values_are_rejected_with_a_clear_message(path, value, message):
    with pytest.raises(ConfigError, match=message) as caught:
        validate_config(with_change(path, value))
    assert "\n" not in str(caught.value)


def test_not_a_mapping_is_rejected(tmp_path: Path):
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(bad)


def test_broken_yaml_is_rejected(tmp_path: Path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("hmm: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_snakemake_stops_before_any_job_on_a_bad_config(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "hmm:\n  conditions:\n    - {id: x, factors: [{kind: mess3, lambda: 0.7}, {kind: mess3, lambda: -0.7}]}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(PROJECT_ROOT / "Snakefile"), "--directory",
         str(tmp_path), "--configfile", str(SMOKE_CONFIG), str(bad), "--cores", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    assert "invalid configuration" in result.stderr and "lambda >= -1/2" in result.stderr
    assert not (tmp_path / "results").exists()
