"""The data stage through Snakemake on the smoke config: stores open in xarray, caching is exact."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from helpers.paths import PROJECT_ROOT, SMOKE_CONFIG
from helpers.pipeline import run_snakemake

from headshare.tasks.hmm.exact import conditional_entropies
from headshare.tasks.hmm.processes import mess3

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_workdir(smoke_pipeline: Path) -> Path:
    return smoke_pipeline


def planned_jobs(output: str) -> dict[str, int]:
    """Rule -> job count from a dry run's job-stats table."""
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)\s*$", output, flags=re.MULTILINE)}


def test_hmm_store_holds_exact_references(data_workdir: Path):
    smoke = yaml.safe_load(SMOKE_CONFIG.read_text())
    context = smoke["hmm"]["context"]
    store = data_workdir / "results/data/hmm/m3_0.7_m3_0.7/a~0.85.zarr"
    dataset = xr.open_zarr(store)
    assert dataset.sizes["sequence"] == smoke["hmm"]["eval_sequences"]
    assert dataset.sizes["position"] == context + 1
    single = conditional_entropies(mess3(0.7, 0.85), context + 1)
    np.testing.assert_allclose(dataset["optimal_loss"].values, 2 * single, rtol=1e-12)
    assert dataset.attrs["condition"] == "m3_0.7_m3_0.7"
    assert dataset.attrs["emission_fidelity"] == 0.85
    for key in ("config", "parameters", "package_versions", "git_revision"):
        assert dataset.attrs[key]
    joint = dataset["factor_tokens"].sel(factor=1) * 3 + dataset["factor_tokens"].sel(factor=2)
    assert (joint == dataset["tokens"]).all()


def test_readoff_and_regression_stores_open(data_workdir: Path):
    readoff = xr.open_zarr(data_workdir / "results/data/readoff.zarr")
    assert int(readoff["tokens"][:, -1].max()) == 11
    regression = xr.open_zarr(data_workdir / "results/data/regression.zarr")
    assert regression.attrs["zero_loss"] == pytest.approx(4 / 24)
    assert regression.attrs["gd_loss"] < regression.attrs["zero_loss"]


def test_rerun_with_unchanged_config_does_nothing(data_workdir: Path):
    result = run_snakemake(data_workdir, "data", "--dry-run")
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_one_lambda_pair_regenerates_only_that_dataset(data_workdir: Path, tmp_path: Path):
    smoke = yaml.safe_load(SMOKE_CONFIG.read_text())
    smoke["hmm"]["conditions"][1]["factors"][1]["lambda"] = -0.6
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(smoke))
    result = run_snakemake(data_workdir, "data", "--dry-run", "--configfile", str(SMOKE_CONFIG), str(changed))
    assert planned_jobs(result.stdout).get("generate_hmm") == 1
    assert "ts_0.7_ts_-0.7" in result.stdout and "m3_0.7_m3_0.7/a~" not in result.stdout.split("Job stats")[0]


def readme_python_blocks() -> list[str]:
    text = (PROJECT_ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_readme_snippets_run_on_the_smoke_results(data_workdir: Path, monkeypatch):
    blocks = readme_python_blocks()
    assert blocks, "the README must show how to open a store in xarray"
    monkeypatch.chdir(data_workdir)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_every_stage_produced_its_artifacts(smoke_pipeline: Path):
    smoke = yaml.safe_load(SMOKE_CONFIG.read_text())
    results = smoke_pipeline / "results"
    main = (
        len(smoke["hmm"]["conditions"]) * len(smoke["hmm"]["loss_positions"])
        * len(smoke["hmm"]["grid"]["n_heads"]) * len(smoke["hmm"]["grid"]["d_head"])
        * len(smoke["hmm"]["emission_fidelity"])
    )
    (extra,) = smoke["hmm"]["extra_grids"]  # one sub-grid, disjoint from the main grid
    extra_points = len(extra["conditions"]) * len(extra["n_heads"]) * len(extra["emission_fidelity"]) * len(extra["loss_positions"])
    n_hmm = (main + extra_points) * len(smoke["hmm"]["grid"]["seeds"])
    assert len(list((results / "models" / "hmm").rglob("model.pt"))) == n_hmm
    assert len(list((results / "extract" / "hmm").rglob("*.zarr"))) == n_hmm
    for family in ("hmm", "readoff", "regression"):
        assert (results / f"{family}.zarr").is_dir()
    captions = sorted((results / "figures" / "captions").glob("*.rst"))
    figures = sorted(path for path in (results / "figures").rglob("*") if path.is_file() and path not in captions)
    assert figures and all(path.stat().st_size > 1000 for path in figures)
    drawn = {Path(path.relative_to(results / "figures").parts[0]).stem for path in figures}  # folder or single file
    assert {path.stem for path in captions} == drawn
    assert all(path.read_text().strip() for path in captions)
    assert {path.suffix for path in figures} == {".png", ".pdf"}
    stems = {suffix: {path.with_suffix("") for path in figures if path.suffix == suffix} for suffix in (".png", ".pdf")}
    assert stems[".png"] == stems[".pdf"]
    scores = (results / "scores.md").read_text()
    assert "confirmed" in scores or "refuted" in scores or "inconclusive" in scores


@pytest.mark.parametrize("family", ["hmm", "readoff", "regression"])
def test_combined_store_selects_on_every_grid_axis(smoke_pipeline: Path, family: str):
    from headshare import tasks

    combined = xr.open_zarr(smoke_pipeline / f"results/{family}.zarr")
    assert combined.attrs["task"] == family and combined.attrs["git_revision"]
    for axis in tasks.get(family).grid_axes:
        value = combined[axis].values[0]
        selected = combined.sel({axis: value})
        assert axis not in selected.dims
        assert selected.sizes == {dim: size for dim, size in combined.sizes.items() if dim != axis}
