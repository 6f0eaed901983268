"""Shared fixtures: the smoke pipeline, run once per session, and synthetic stores over the sweep's grid."""

from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr
from helpers.figure_checks import sweep_settings, synthetic_store
from helpers.pipeline import run_snakemake
from helpers.synthetic import ConditionSpec


@pytest.fixture(scope="session")
def smoke_pipeline(tmp_path_factory) -> Path:
    """A working directory in which the whole smoke pipeline (every stage and the scores) has run once."""
    workdir = tmp_path_factory.mktemp("smoke-pipeline")
    run_snakemake(workdir)
    return workdir


@pytest.fixture(scope="module")
def sweep() -> dict[str, tuple[dict, xr.Dataset]]:
    """Per task: the sweep's grid (every value, two seeds for speed) and a synthetic store over it."""
    result = {}
    for name, settings in sweep_settings().items():
        grid = {**settings.grid, "seed": settings.grid["seed"][:2]}
        conditions = [
            ConditionSpec(c.id, c.role, c.factors[0].kind, c.factors[0].lam, c.factors[1].kind, c.factors[1].lam)
            for c in getattr(settings, "conditions", ())
        ]
        result[name] = grid, synthetic_store(name, grid, conditions)
    return result
