"""Determinism: two runs of one config, in separate processes and folders, write identical datasets and
bit-identical CPU weights (provenance attrs such as the git revision aside)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import xarray as xr

from headshare.store import open_store

TESTS = Path(__file__).resolve().parent
PROVENANCE = ("config", "parameters", "package_versions", "git_revision")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, Path]:
    """Two independent runs, side by side, with differently salted str hashes (so hash() cannot leak in)."""
    folders = [tmp_path_factory.mktemp(f"run{index}") for index in (1, 2)]
    runs = [
        subprocess.Popen(
            [sys.executable, "-c",
             f"import sys; sys.path.insert(0, {str(TESTS)!r}); "
             f"from helpers.artifacts import produce_artifacts; produce_artifacts({str(folder)!r})"],
            env={**os.environ, "PYTHONHASHSEED": str(index)},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for index, folder in enumerate(folders, start=1)
    ]
    for run in runs:
        output, _ = run.communicate(timeout=600)
        assert run.returncode == 0, output[-5000:]
    return folders[0], folders[1]


def relative_paths(root: Path, pattern: str) -> list[Path]:
    return sorted(path.relative_to(root) for path in root.rglob(pattern))


def without_provenance(dataset: xr.Dataset) -> xr.Dataset:
    stripped = dataset.copy()
    stripped.attrs = {key: value for key, value in dataset.attrs.items() if key not in PROVENANCE}
    return stripped


def test_both_runs_write_identical_datasets(two_runs):
    first, second = two_runs
    stores = relative_paths(first, "*.zarr")
    assert len(stores) == 3 + 1 + 1 and stores == relative_paths(second, "*.zarr")  # hmm, readoff, regression
    for store in stores:
        xr.testing.assert_identical(
            without_provenance(open_store(first / store)), without_provenance(open_store(second / store))
        )


def test_both_runs_train_bit_identical_weights(two_runs):
    first, second = two_runs
    models = relative_paths(first, "model.pt")
    assert len(models) == 2 + 2 + 1 and models == relative_paths(second, "model.pt")  # first cohort of each task
    for model in models:
        one, other = (torch.load(root / model, weights_only=True) for root in (first, second))
        assert (one["model_names"], one["model_config"]) == (other["model_names"], other["model_config"])
        assert one["model"].keys() == other["model"].keys()
        for name, tensor in one["model"].items():
            assert torch.equal(tensor, other["model"][name]), (model, name)
        records = [json.loads((root / model.parent / "training.json").read_text()) for root in (first, second)]
        assert records[0]["losses"] == records[1]["losses"], model


def test_the_comparison_can_tell_runs_apart(two_runs):
    """Equality above is no accident of constant outputs: different seeds and conditions do differ."""
    first, _ = two_runs
    seeds = [torch.load(path, weights_only=True)["model"] for path in sorted((first / "models" / "hmm").rglob("model.pt"))]
    assert len(seeds) == 2 and not torch.equal(seeds[0]["W_E"], seeds[1]["W_E"])
    tokens = [open_store(path)["tokens"].values for path in sorted((first / "data" / "hmm").rglob("*.zarr"))]
    assert len(tokens) == 3 and (tokens[0] != tokens[1]).any()
