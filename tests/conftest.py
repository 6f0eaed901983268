"""Shared fixtures: the smoke pipeline, run once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.pipeline import run_snakemake


@pytest.fixture(scope="session")
def smoke_pipeline(tmp_path_factory) -> Path:
    """A working directory in which the whole smoke pipeline (every stage and the scores) has run once."""
    workdir = tmp_path_factory.mktemp("smoke-pipeline")
    run_snakemake(workdir)
    return workdir
