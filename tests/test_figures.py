"""Figures: declared once per task, they cover every grid axis, fit a page and render from contract stores."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from helpers.figure_checks import (
    MAX_HEIGHT,
    grid_of,
    shown_texts,
    shows,
)
from helpers.synthetic import (
    DEFAULT_CONDITIONS,
    synthetic_belief_store,
    synthetic_hmm_store,
    synthetic_readoff_store,
    synthetic_regression_store,
)
from matplotlib.image import imread

from headshare import figures
from headshare.figures.canvas import MAX_WIDTH, panel_grid
from headshare.figures.heads import stack_heads
from headshare.figures.render import draw_page, figures_folder, render
from headshare.figures.spec import FigureSpec, format_value
from headshare.store import write_store
from headshare.tasks.hmm.plots import rank_heads_by_factor, reference_decay_curve

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------ synthetic stores




def _with_failed_model(hmm: xr.Dataset, n_heads: int, seed: int) -> xr.Dataset:
    """Blank out every per-model value of one (n_heads, seed) model, as for a run that produced nothing."""
    per_model = [name for name, var in hmm.data_vars.items() if {"n_heads", "seed"} <= set(var.dims)]
    failed = (hmm["n_heads"] == n_heads) & (hmm["seed"] == seed)
    return hmm.assign({name: hmm[name].where(~failed) for name in per_model})


# ------------------------------------------------------------------------- what a figure shows




# -------------------------------------------------------------------------- the sweep's grids




def test_every_figure_of_the_sweep_shows_every_value_of_every_grid_axis(sweep):
    """Split axes: one file per value, named in the file name and the title. Faceted and summarised axes:
    every value named in each file (checked on the first and last file). Sizes fit a page."""
    assert {spec.task for spec in figures.all_figures()} == set(sweep)
    for spec in figures.all_figures():
        grid, store = sweep[spec.task]
        pages = spec.pages(grid)
        assert len({page.stem for page in pages}) == len(pages) == math.prod(len(grid[a]) for a in spec.split)
        for axis in spec.split:
            for value in grid[axis]:
                assert any(f"{axis}~{format_value(value)}" in page.stem for page in pages), (spec.name, axis, value)
        for page in (pages[0], pages[-1]):
            fig = draw_page(spec, page, synthetic_belief_store() if spec.source == "model" else store)
            texts = shown_texts(fig)
            expected = [(axis, value) for axis in (*spec.facets, *spec.summarised) for value in grid[axis]]
            expected += list(page.fixed.items())
            missing = [(axis, value) for axis, value in expected if not shows(texts, axis, value)]
            assert not missing, f"{spec.name} ({page.stem}) does not show {missing}"
            width, height = fig.get_size_inches()
            assert width <= MAX_WIDTH + 1e-9 and height <= MAX_HEIGHT, (spec.name, width, height)


def test_the_sweep_splits_attention_decay_by_every_a_loss_and_head_size(sweep):
    grid, _ = sweep["hmm"]
    stems = {page.stem for page in figures.get("attention_decay").pages(grid)}
    assert "attention_decay/a~0.6_loss~last_d_head~16_n_layers~1" in stems
    assert len(stems) == 5 * 2 * 4 * 1


# ------------------------------------------------------------------------------- rendered files
@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, dict[str, xr.Dataset], list[Path]]:
    """Every figure from zarr-backed stores with one- and two-layer models, missing heads (1-head rows
    of a 3-head grid) and one model that is NaN throughout."""
    workdir = tmp_path_factory.mktemp("figures")
    hmm = synthetic_hmm_store(conditions=DEFAULT_CONDITIONS[1:], n_layers=(1, 2), a=(0.85, 0.6), loss=("all",),
                              n_heads=(1, 3), d_head=(4,), seeds=(0, 1))
    stores = {
        "hmm": _with_failed_model(hmm, n_heads=3, seed=1),
        "readoff": synthetic_readoff_store(n_layers=(1, 2), seeds=(0, 1)),
        "regression": synthetic_regression_store(n_layers=(1, 2)),
    }
    stores = {name: xr.open_zarr(write_store(store, workdir / f"{name}.zarr")) for name, store in stores.items()}
    outdir = workdir / "out"
    paths = []
    for spec in figures.all_figures():
        grid = grid_of(stores[spec.task], spec.task)
        sources = [synthetic_belief_store()] * len(spec.pages(grid)) if spec.source == "model" else [stores[spec.task]]
        paths += render(spec, grid, sources, outdir)
    return outdir, stores, paths


def test_every_page_is_written_as_png_and_pdf(rendered):
    outdir, stores, paths = rendered
    expected = [
        outdir / f"{page.stem}.{fmt}"
        for spec in figures.all_figures()
        for page in spec.pages(grid_of(stores[spec.task], spec.task))
        for fmt in ("png", "pdf")
    ]
    assert sorted(paths) == sorted(expected)
    for path in paths:
        head = path.read_bytes()[:8]
        if path.suffix == ".png":
            assert head == PNG_MAGIC, path
            assert imread(path).std() > 0.05, f"{path} is blank"
        else:
            assert head.startswith(b"%PDF"), path


def test_rendering_twice_gives_identical_files(rendered, tmp_path):
    outdir, stores, _ = rendered
    spec = figures.get("regression_vs_gd")
    again = render(spec, grid_of(stores["regression"], "regression"), [stores["regression"]], tmp_path)
    for path in again:
        assert path.read_bytes() == (outdir / path.relative_to(tmp_path)).read_bytes(), path


def test_a_grid_value_missing_from_the_store_is_named(tmp_path):
    store = synthetic_regression_store(n_heads=(1,), seeds=(0,))
    grid = {**grid_of(store, "regression"), "n_layers": (3,)}
    with pytest.raises(ValueError, match=r"3 is not among the grid values \[1\]"):
        render(figures.get("regression_generalisation"), grid, [store], tmp_path)
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------- declarations
def _spec(**fields) -> FigureSpec:
    return FigureSpec(**{"name": "toy", "task": "toy", "title": "t", "caption": "c.", "draw": None, **fields})


def test_pages_are_one_file_per_split_value_named_axis_tilde_value():
    spec = _spec(facets=("n_heads",), split=("a", "loss"))
    grid = {"a": (0.85, 0.6), "loss": ("all",), "n_heads": (1, 2), "seed": (0,)}
    assert [page.stem for page in spec.pages(grid)] == ["toy/a~0.85_loss~all", "toy/a~0.6_loss~all"]
    assert [page.stem for page in _spec(facets=("n_heads",)).pages(grid)] == ["toy"]
    assert figures_folder(spec.pages(grid)[0], "results/figures/toy/a~0.85_loss~all.png") == Path("results/figures")
    assert figures_folder(_spec().pages(grid)[0], "results/figures/toy.png") == Path("results/figures")


def test_a_per_model_figure_names_its_picked_model():
    spec = _spec(source="model", split=("condition",), summarised=(),
                 pick={"n_heads": "largest", "d_head": "smallest", "seed": "first listed"})
    grid = {"condition": ("x", "y"), "n_heads": (2, 3, 1), "d_head": (8, 4), "seed": (5, 0)}
    assert [page.fixed for page in spec.pages(grid)] == [
        {"condition": c, "n_heads": 3, "d_head": 4, "seed": 5} for c in ("x", "y")
    ]
    with pytest.raises(ValueError, match=r"pick rules \['median'\]"):
        _spec(source="model", pick={"seed": "median"})


def test_a_declaration_must_cover_each_grid_axis_once():
    axes = ("condition", "n_heads", "seed")
    _spec(facets=("condition",), split=("n_heads",)).check_axes(axes)
    with pytest.raises(ValueError, match=r"missing \['n_heads'\]"):
        _spec(facets=("condition",)).check_axes(axes)
    with pytest.raises(ValueError, match=r"repeated \['condition'\]"):
        _spec(facets=("condition", "n_heads"), split=("condition",)).check_axes(axes)
    with pytest.raises(ValueError, match=r"unknown \['layer'\]"):
        _spec(facets=("condition", "n_heads", "layer")).check_axes(axes)


def test_declarations_import_without_plotting_or_torch():
    code = (
        "import sys; from headshare import figures; names = [s.name for s in figures.all_figures()]; "
        "heavy = [m for m in ('matplotlib', 'seaborn', 'torch') if m in sys.modules]; "
        "assert not heavy, heavy; print(len(names))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == len(figures.all_figures()) >= 1


# ------------------------------------------------------------------------------------- helpers
def test_panels_wrap_after_four_columns_within_the_page_width():
    fig, axes = panel_grid(10, legend=True)
    assert len(axes) == 10 and len(fig.axes) == 10
    assert {ax.get_subplotspec().get_geometry()[:2] for ax in axes} == {(3, 4)}
    assert fig.get_size_inches()[0] <= MAX_WIDTH
    fig, axes = panel_grid(6, columns=3)
    assert {ax.get_subplotspec().get_geometry()[:2] for ax in axes} == {(2, 3)}
    with pytest.raises(ValueError, match="at least 1 panel, got 0"):
        panel_grid(0)


def test_heads_of_every_layer_are_stacked_and_padding_dropped():
    # a 2-layer store slot holding a model with 2 layers x 1 head in a 3-head grid
    values = np.full((2, 3, 2), np.nan)
    values[0, 0] = [1.0, 2.0]
    values[1, 0] = [3.0, 4.0]
    stacked = stack_heads(xr.DataArray(values, dims=("layer", "head", "distance")), n_layers=2)
    assert list(stacked["unit"].values) == ["L0 H0", "L1 H0"]
    np.testing.assert_array_equal(stacked.transpose("unit", "distance").values, [[1.0, 2.0], [3.0, 4.0]])
    one_layer = stack_heads(xr.DataArray(values, dims=("layer", "head", "distance")), n_layers=1)
    assert list(one_layer["unit"].values) == ["head 0"]


def test_reference_decay_curve_is_the_anchored_cumulative_product():
    np.testing.assert_allclose(reference_decay_curve(0.5, np.full(4, 0.7)), 0.5 * 0.7 ** np.arange(5))
    np.testing.assert_allclose(reference_decay_curve(0.3, [0.5, 0.4]), [0.3, 0.15, 0.06])


def test_heads_are_ranked_by_factor_one_specificity_within_each_model():
    # seed 0: head 0 serves factor 1; seed 1: the same roles with head labels swapped;
    # seed 2: a 3-slot grid with a missing head in the middle.
    values = np.array([
        [[0.9, 0.1], [0.2, 0.8], [np.nan, np.nan]],
        [[0.2, 0.8], [0.9, 0.1], [np.nan, np.nan]],
        [[0.1, 0.5], [np.nan, np.nan], [0.6, 0.0]],
    ])
    ablation = xr.DataArray(values, dims=("seed", "head", "factor"), coords={"factor": [1, 2]})
    ranked = rank_heads_by_factor(ablation)
    expected = np.array([
        [[0.9, 0.1], [0.2, 0.8], [np.nan, np.nan]],
        [[0.9, 0.1], [0.2, 0.8], [np.nan, np.nan]],
        [[0.6, 0.0], [0.1, 0.5], [np.nan, np.nan]],
    ])
    np.testing.assert_array_equal(ranked.transpose("seed", "head", "factor").values, expected)
    np.testing.assert_array_equal(ranked["head"].values, [0, 1, 2])
    with pytest.raises(ValueError, match="factor"):
        rank_heads_by_factor(ablation.isel(factor=[0]))
