"""Figures render from stores that follow the store contract, including stores with missing heads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from matplotlib.image import imread

from headshare import figures
from headshare.store import write_store
from helpers.synthetic import (
    DEFAULT_CONDITIONS,
    synthetic_belief_store,
    synthetic_hmm_store,
    synthetic_readoff_store,
    synthetic_regression_store,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _reopened(dataset: xr.Dataset, path: Path) -> xr.Dataset:
    """Round-trip through zarr, so figures read lazy arrays and zarr's string coordinates."""
    return xr.open_zarr(write_store(dataset, path))


def _assert_figure_files(paths: list[Path]) -> None:
    for path in paths:
        assert path.exists() and path.stat().st_size > 5_000, path
        head = path.read_bytes()[:8]
        if path.suffix == ".png":
            assert head == PNG_MAGIC, path
            pixels = imread(path)
            assert pixels.std() > 0.05, f"{path} is blank"
        else:
            assert path.suffix == ".pdf" and head.startswith(b"%PDF"), path


def _with_failed_model(hmm: xr.Dataset, n_heads: int, seed: int) -> xr.Dataset:
    """Blank out every per-model value of one (n_heads, seed) model, as for a run that produced nothing."""
    per_model = [name for name, var in hmm.data_vars.items() if {"n_heads", "seed"} <= set(var.dims)]
    failed = (hmm["n_heads"] == n_heads) & (hmm["seed"] == seed)
    return hmm.assign({name: hmm[name].where(~failed) for name in per_model})


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, list[Path]]:
    """Every figure from zarr-backed stores whose grids hold missing heads (1-head rows of a 3-head
    grid) and one model that is NaN throughout."""
    workdir = tmp_path_factory.mktemp("figures")
    hmm = synthetic_hmm_store(conditions=DEFAULT_CONDITIONS[1:], n_heads=(1, 3), d_head=(4,))
    hmm = _reopened(_with_failed_model(hmm, n_heads=3, seed=1), workdir / "hmm.zarr")
    readoff = _reopened(synthetic_readoff_store(seeds=(0, 1)), workdir / "readoff.zarr")
    regression = _reopened(synthetic_regression_store(), workdir / "regression.zarr")
    outdir = workdir / "out"
    paths = figures.render_all(hmm, readoff, regression, outdir)
    paths += figures.belief_simplex(synthetic_belief_store(), outdir / "belief_simplex")
    return outdir, paths


def test_every_figure_is_written_as_png_and_pdf(rendered):
    outdir, paths = rendered
    stems = {path.stem for path in paths}
    assert stems == set(figures.FIGURE_CAPTIONS)
    assert sorted(paths) == sorted(outdir / f"{stem}.{ext}" for stem in stems for ext in ("png", "pdf"))
    _assert_figure_files(paths)


def test_captions_are_single_sentences():
    for stem, caption in figures.FIGURE_CAPTIONS.items():
        assert caption.endswith(".") and caption.count(". ") == 0, stem


def test_regression_figure_without_training_curves_and_absent_stores_skipped(tmp_path):
    regression = synthetic_regression_store(n_heads=(1,), seeds=(0, 1), with_curves=False)
    paths = figures.render_all(None, None, regression, tmp_path / "first")
    assert sorted(paths) == [tmp_path / "first" / "regression.pdf", tmp_path / "first" / "regression.png"]
    _assert_figure_files(paths)
    again = figures.render_all(None, None, regression, tmp_path / "again")
    assert [path.read_bytes() for path in sorted(paths)] == [path.read_bytes() for path in sorted(again)], (
        "rendering the same store twice must give identical files"
    )


def test_unknown_grid_value_is_rejected_with_the_allowed_values(tmp_path):
    hmm = synthetic_hmm_store(conditions=DEFAULT_CONDITIONS[:1], a=(0.85,), loss=("all",), n_heads=(1,),
                              d_head=(4,), seeds=(0,))
    with pytest.raises(ValueError, match=r"a=0\.5 .*allowed values: \[0\.85\]"):
        figures.attention_decay(hmm, tmp_path / "x", a=0.5)
    with pytest.raises(ValueError, match=r"d_head=3 .*\[4\]"):
        figures.belief_r2(hmm, tmp_path / "x", d_head=3)
    with pytest.raises(ValueError, match="lacks"):
        figures.excess_heatmap(hmm.drop_vars("normalised_excess"), tmp_path / "x")
    with pytest.raises(ValueError, match="belief_true_1"):
        figures.belief_simplex(xr.Dataset(), tmp_path / "x")
    assert not list(tmp_path.glob("x.*"))


def test_reference_decay_curve_is_the_anchored_cumulative_product():
    np.testing.assert_allclose(figures.reference_decay_curve(0.5, np.full(4, 0.7)), 0.5 * 0.7 ** np.arange(5))
    np.testing.assert_allclose(figures.reference_decay_curve(0.3, [0.5, 0.4]), [0.3, 0.15, 0.06])


def test_heads_are_ranked_by_factor_one_specificity_within_each_model():
    # seed 0: head 0 serves factor 1; seed 1: the same roles with head labels swapped;
    # seed 2: a 3-slot grid with a missing head in the middle.
    values = np.array([
        [[0.9, 0.1], [0.2, 0.8], [np.nan, np.nan]],
        [[0.2, 0.8], [0.9, 0.1], [np.nan, np.nan]],
        [[0.1, 0.5], [np.nan, np.nan], [0.6, 0.0]],
    ])
    ablation = xr.DataArray(values, dims=("seed", "head", "factor"), coords={"factor": [1, 2]})
    ranked = figures.rank_heads_by_factor(ablation)
    expected = np.array([
        [[0.9, 0.1], [0.2, 0.8], [np.nan, np.nan]],
        [[0.9, 0.1], [0.2, 0.8], [np.nan, np.nan]],
        [[0.6, 0.0], [0.1, 0.5], [np.nan, np.nan]],
    ])
    np.testing.assert_array_equal(ranked.transpose("seed", "head", "factor").values, expected)
    np.testing.assert_array_equal(ranked["head"].values, [0, 1, 2])
    with pytest.raises(ValueError, match="factor"):
        figures.rank_heads_by_factor(ablation.isel(factor=[0]))
