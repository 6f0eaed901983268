"""Stores: a lost chunk file is detected and named, whole stores read back as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from headshare.store import CHUNK_RECORD, ArtifactError, open_store, write_store


def chunked_dataset() -> xr.Dataset:
    """Two row chunks of a 4 x 3 grid, a vector, a scalar and a string coordinate."""
    grid = xr.DataArray(np.arange(12.0).reshape(4, 3) / 7, dims=("row", "column"))
    grid.encoding["chunks"] = (2, 3)
    return xr.Dataset(
        {"grid": grid, "count": ("row", np.arange(4)), "total": ((), 66.0 / 7)},
        coords={"row": np.arange(4), "name": ("column", np.array(["x", "y", "z"], dtype=object))},
        attrs={"about": "known by construction"},
    )


def chunk_files(store: Path, name: str) -> list[Path]:
    return sorted(path for path in (store / name).rglob("*") if path.is_file() and path.name != "zarr.json")


def test_an_intact_store_reads_back_as_written(tmp_path: Path):
    written = chunked_dataset()
    store = write_store(written, tmp_path / "data.zarr")
    assert len(chunk_files(store, "grid")) == 2
    xr.testing.assert_identical(open_store(store), written)
    xr.testing.assert_identical(open_store(store, load=False).load(), written)


def test_the_chunk_record_is_part_of_the_consolidated_metadata(tmp_path: Path):
    store = write_store(chunked_dataset(), tmp_path / "data.zarr")
    root = json.loads((store / "zarr.json").read_text())
    expected = {"grid": 2, "count": 1, "total": 1, "row": 1, "name": 1}
    assert root["attributes"][CHUNK_RECORD] == expected
    assert xr.open_zarr(store).attrs[CHUNK_RECORD] == expected  # what a plain reader sees


@pytest.mark.parametrize("variable", ["grid", "total", "row"])
def test_a_deleted_chunk_file_is_reported_naming_store_and_variable(tmp_path: Path, variable: str):
    store = write_store(chunked_dataset(), tmp_path / "data.zarr")
    chunk_files(store, variable)[-1].unlink()
    message = re.escape(str(store)) + f": variable '{variable}' has .* on disk.*delete it and rerun"
    with pytest.raises(ArtifactError, match=message):
        open_store(store)
    with pytest.raises(ArtifactError, match=message):
        open_store(store, load=False)


def test_a_variable_that_is_all_fill_value_has_no_chunk_files_and_still_opens(tmp_path: Path):
    written = chunked_dataset().assign(missing=(("row", "column"), np.full((4, 3), np.nan)))
    store = write_store(written, tmp_path / "data.zarr")
    assert chunk_files(store, "missing") == []  # zarr skips chunks equal to the fill value (NaN)
    xr.testing.assert_identical(open_store(store), written)


@pytest.mark.filterwarnings("ignore:Consolidated metadata:UserWarning")
def test_a_store_without_a_chunk_record_is_refused(tmp_path: Path):
    store = tmp_path / "older.zarr"
    chunked_dataset().to_zarr(store, consolidated=True)
    with pytest.raises(ArtifactError, match=re.escape(str(store)) + " has no record of its chunk files"):
        open_store(store)
