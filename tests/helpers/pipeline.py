"""Running the project's Snakefile on the smoke configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.paths import PROJECT_ROOT, SMOKE_CONFIG


def run_snakemake(
    workdir: Path, *args: str, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run the project's Snakefile on the smoke config inside ``workdir`` (``env`` added to the environment);
    fail with its output on error."""
    command = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(PROJECT_ROOT / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(SMOKE_CONFIG),
        "--cores", "2",
        *args,
    ]
    environment = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning", **(env or {})}
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment)
    if result.returncode != 0:
        pytest.fail(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result
