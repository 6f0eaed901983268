"""Provenance attached to every artifact: what produced it, from which config, seed and code."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

TRACKED_PACKAGES = ("headshare", "numpy", "torch", "xarray", "zarr", "snakemake")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def package_versions() -> dict[str, str]:
    """Installed versions of the packages whose behaviour shapes the artifacts."""
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_revision(root: Path = PROJECT_ROOT) -> str:
    """HEAD commit of the project, suffixed ``-dirty`` when tracked files differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        revision = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{revision}-dirty" if dirty else revision


def to_jsonable(value: Any) -> Any:
    """Convert dataclasses, numpy scalars and arrays to plain JSON types."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def provenance_attrs(config: dict, **parameters: Any) -> dict[str, str]:
    """Attrs for an artifact: the full config, the generating parameters, package versions, git revision.

    Values are JSON strings so that zarr stores and checkpoints carry them losslessly.
    """
    return {
        "config": json.dumps(to_jsonable(config), sort_keys=True),
        "parameters": json.dumps(to_jsonable(parameters), sort_keys=True),
        "package_versions": json.dumps(package_versions(), sort_keys=True),
        "git_revision": git_revision(),
    }
