"""Configurations as the pipeline sees them: config.yaml with --configfile overrides merged over it."""

from __future__ import annotations

import yaml

from headshare.config import validate_config
from helpers.paths import PROJECT_ROOT, SMOKE_CONFIG


def default_config() -> dict:
    with open(PROJECT_ROOT / "config.yaml") as handle:
        return yaml.safe_load(handle)


def deep_merge(base: dict, override: dict) -> dict:
    """Merge like Snakemake merges --configfile on top of configfile: (mappings recursively, lists replaced)."""
    merged = dict(base)
    for key, value in override.items():
        merged[key] = deep_merge(base[key], value) if isinstance(value, dict) and key in base else value
    return merged


def smoke_config() -> dict:
    """The smoke configuration as the pipeline sees it: config.yaml with smoke.yaml merged over it."""
    return validate_config(deep_merge(default_config(), yaml.safe_load(SMOKE_CONFIG.read_text())))
