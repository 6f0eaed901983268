"""Shared fixtures: the project root and a runner for Snakemake on the smoke configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SMOKE_CONFIG = PROJECT_ROOT / "workflow" / "configs" / "smoke.yaml"


def run_snakemake(workdir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the project's Snakefile on the smoke config inside ``workdir``; fail with its output on error."""
    command = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(PROJECT_ROOT / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(SMOKE_CONFIG),
        "--cores", "2",
        *args,
    ]
    environment = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment)
    if result.returncode != 0:
        pytest.fail(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


@pytest.fixture(scope="session")
def smoke_pipeline(tmp_path_factory) -> Path:
    """A working directory in which the whole smoke pipeline (every stage and the scores) has run once."""
    workdir = tmp_path_factory.mktemp("smoke-pipeline")
    run_snakemake(workdir)
    return workdir
