"""Zarr artifact I/O with one metadata policy and crash-safe writes.

Policy: every store is written with consolidated metadata, so a plain ``xr.open_zarr(path)`` opens it
quickly and without warnings. zarr 3 warns that consolidated metadata is not yet part of the v3 spec;
that warning is expected here and silenced at write time only.

Stores are written to a temporary sibling and renamed into place, so a killed job never leaves a
half-written store that looks complete; the sibling's name is fixed, so the next write of the same store
clears whatever a killed one left behind.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import xarray as xr


class ArtifactError(RuntimeError):
    """An artifact is missing, truncated or inconsistent with what the pipeline expects."""


def write_store(dataset: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``dataset`` to ``path`` atomically (temp store, then rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        dataset.to_zarr(staging, mode="w", consolidated=True)
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return target


def open_store(path: str | os.PathLike, *, load: bool = True) -> xr.Dataset:
    """Open a store written by :func:`write_store`, failing clearly if it is missing or damaged."""
    source = Path(path)
    if not source.exists():
        raise ArtifactError(f"artifact {source} does not exist; rerun the rule that produces it")
    try:
        dataset = xr.open_zarr(source)
        return dataset.load() if load else dataset
    except Exception as error:  # zarr raises many types for damaged stores
        raise ArtifactError(
            f"artifact {source} is unreadable or truncated ({type(error).__name__}: {error}); "
            "delete it and rerun the rule that produces it"
        ) from error
