"""Render a declared figure: one file per page, each titled with every value it holds fixed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import xarray as xr
from matplotlib.figure import Figure

from headshare.figures.canvas import save, themed
from headshare.figures.spec import COMBINED, FigureSpec, Page, describe, format_value
from headshare.grid import find_value


def _slice(store: xr.Dataset, values: dict) -> xr.Dataset:
    """The store at one value of each named axis, matched with the shared grid tolerance."""
    chosen = {}
    for axis, wanted in values.items():
        if axis not in store.dims:
            raise ValueError(f"store has no axis {axis!r}; its dims are {sorted(map(str, store.dims))}")
        chosen[axis] = find_value(store[axis].values, wanted)
    return store.sel(chosen)


def fixed_line(spec: FigureSpec, page: Page, store: xr.Dataset) -> str:
    """The title line naming what this file holds fixed: its split and picked values, faceted axes that
    have a single value here, and the summarised values."""
    single = {axis: store[axis].values[0] for axis in spec.facets if axis in store.dims and store.sizes[axis] == 1}
    parts = [describe({**page.fixed, **single})]
    for axis in spec.summarised:
        if axis in store.dims:
            values = ", ".join(format_value(v) for v in store[axis].values)
            parts.append(f"{axis} ∈ {{{values}}}")
    return " · ".join(part for part in parts if part)


def _trained_facets(spec: FigureSpec, sliced: xr.Dataset) -> xr.Dataset:
    """The page without facet values at which no model was trained (a sparse grid leaves them NaN)."""
    trained = sliced["steps_trained"].notnull()
    for axis in spec.facets:
        if axis in trained.dims:
            keep = trained.any([dim for dim in trained.dims if dim != axis])
            sliced = sliced.sel({axis: keep.values})
    return sliced


def draw_page(spec: FigureSpec, page: Page, store: xr.Dataset) -> Figure:
    """The Figure of one page: the draw function's panels under the figure's title and its fixed values."""
    sliced = _trained_facets(spec, _slice(store, page.split)) if spec.source == COMBINED else store
    with themed():
        fig = spec.draw(sliced, page.fixed)
        fig.suptitle(f"{spec.title}\n{fixed_line(spec, page, sliced)}", wrap=True)
    return fig


def figures_folder(page: Page, path: str | Path) -> Path:
    """The folder that holds every figure, from the path of a file written for ``page``."""
    return Path(path).parents[len(Path(page.stem).parts) - 1]


def render(
    spec: FigureSpec,
    grid: dict[str, tuple],
    stores: Sequence[xr.Dataset],
    outdir: str | Path,
    formats: Sequence[str] = ("png", "pdf"),
    blocks: Sequence[dict[str, tuple]] = (),
) -> list[Path]:
    """Write every page of ``spec`` under ``outdir``; return the files.

    ``stores``: the task's combined store (one), or for a per-model figure one model store per page,
    in the order of ``spec.pages(grid, blocks)``.
    """
    pages = spec.pages(grid, blocks)
    if spec.source == COMBINED:
        if len(stores) != 1:
            raise ValueError(f"figure {spec.name!r} reads one combined store, got {len(stores)}")
        stores = [stores[0]] * len(pages)
    elif len(stores) != len(pages):
        raise ValueError(f"figure {spec.name!r} has {len(pages)} pages but got {len(stores)} model stores")
    written: list[Path] = []
    for page, store in zip(pages, stores):
        fig = draw_page(spec, page, store)
        with themed():
            written += save(fig, Path(outdir) / page.stem, formats)
    return written

