"""Zarr artifact I/O with one metadata policy, crash-safe writes and a check for lost chunks.

Policy: every store is written with consolidated metadata, so a plain ``xr.open_zarr(path)`` opens it
quickly and without warnings. zarr 3 warns that consolidated metadata is not yet part of the v3 spec;
that warning is expected here and silenced at write time only.

Stores are written to a temporary sibling and renamed into place, so a killed job never leaves a
half-written store that looks complete; the sibling's name is fixed, so the next write of the same store
clears whatever a killed one left behind.

A chunk file deleted from a store would read back as fill values (zarr does not write, and so does not
miss, chunks that equal the fill value). Every store therefore records in its attrs how many chunk files
each array has on disk, and :func:`open_store` checks that record before reading. A store without the
record was written by an older version of this package and is refused too: nothing could tell whether
it is whole.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import xarray as xr
import zarr

CHUNK_RECORD = "chunk_files"  # store attr: array name -> number of chunk files written
ARRAY_METADATA = "zarr.json"
RERUN = "delete it and rerun the rule that produces it"


class ArtifactError(RuntimeError):
    """An artifact is missing, truncated or inconsistent with what the pipeline expects."""


def count_chunk_files(store: Path, name: str) -> int:
    """Chunk files of one array on disk: every file in its folder but its metadata, whatever the key encoding."""
    return sum(1 for path in (store / name).rglob("*") if path.is_file() and path.name != ARRAY_METADATA)


def record_chunk_files(store: Path) -> None:
    """Write each array's chunk-file count into the store's attrs and re-consolidate its metadata."""
    group = zarr.open_group(store, mode="r+")
    group.attrs[CHUNK_RECORD] = {name: count_chunk_files(store, name) for name in sorted(group.array_keys())}
    zarr.consolidate_metadata(store)


def write_store(dataset: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write ``dataset`` to ``path`` atomically (temp store, chunk record, then rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        dataset.to_zarr(staging, mode="w", consolidated=True)
        record_chunk_files(staging)
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return target


def check_chunk_files(source: Path, dataset: xr.Dataset) -> None:
    """Raise :class:`ArtifactError` naming the store and the array if any chunk file is gone."""
    recorded = dataset.attrs.get(CHUNK_RECORD)
    if not isinstance(recorded, dict):
        raise ArtifactError(
            f"artifact {source} has no record of its chunk files (written by an older version), "
            f"so a lost chunk could not be detected; {RERUN}"
        )
    for name, expected in recorded.items():
        found = count_chunk_files(source, name)
        if found != expected:
            raise ArtifactError(
                f"artifact {source}: variable {name!r} has {found} chunk files on disk, "
                f"{expected} were written; {RERUN}"
            )


def open_store(path: str | os.PathLike, *, load: bool = True) -> xr.Dataset:
    """Open a store written by :func:`write_store`, failing clearly if it is missing or damaged.

    The chunk record is checked and then dropped from the returned attrs, so the dataset equals the one
    that was written.
    """
    source = Path(path)
    if not source.exists():
        raise ArtifactError(f"artifact {source} does not exist; rerun the rule that produces it")
    try:
        dataset = xr.open_zarr(source)
    except Exception as error:  # zarr raises many types for damaged stores
        raise unreadable(source, error) from error
    check_chunk_files(source, dataset)
    del dataset.attrs[CHUNK_RECORD]
    if not load:
        return dataset
    try:
        return dataset.load()
    except Exception as error:
        raise unreadable(source, error) from error


def unreadable(source: Path, error: Exception) -> ArtifactError:
    return ArtifactError(
        f"artifact {source} is unreadable or truncated ({type(error).__name__}: {error}); {RERUN}"
    )
