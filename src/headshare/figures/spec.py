"""What a figure is, declared once: its store, how it covers every grid axis, its caption and draw function.

A declaration is cheap to import (no matplotlib, seaborn or xarray), because the rule files read every
declaration at parse time to know the files each figure will write. Every grid axis of the figure's
task is covered in exactly one way, so no figure can quietly show one value of an axis:

- ``facets``: drawn inside each file (panels, hue, x positions);
- ``split``: one file per value, named ``<figure>/<axis>~<value>_...``, the values stated in its title;
- ``summarised``: reduced inside each panel (seeds: mean with a min-max band, or one point per seed);
- ``pick`` (per-model figures only): one model is drawn, chosen by a stated rule and named in the title.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import xarray as xr
    from matplotlib.figure import Figure

COMBINED = "combined"  # the task's combined store, results/<task>.zarr
MODEL = "model"  # one model's own store, results/extract/<cohort>/<member>.zarr

# How a per-model figure picks its model along an axis it neither facets nor splits.
PICK_RULES: dict[str, Callable[[tuple[Any, ...]], Any]] = {
    "largest": max,
    "smallest": min,
    "first listed": lambda values: values[0],
}

Draw = Callable[["xr.Dataset", Mapping[str, Any]], "Figure"]


def drawn_by(module: str, function: str) -> Draw:
    """A draw function imported from ``module`` on first use, so declarations stay cheap to import."""

    def draw(store: xr.Dataset, fixed: Mapping[str, Any]) -> Figure:
        return getattr(importlib.import_module(module), function)(store, fixed)

    draw.__qualname__ = f"{module}.{function}"
    return draw


def format_value(value: Any) -> str:
    """A grid value as file names and titles show it: ints plainly, floats in shortest round-trip form."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or (hasattr(value, "dtype") and value.dtype.kind in "iu"):
        return str(int(value))
    if isinstance(value, float) or (hasattr(value, "dtype") and value.dtype.kind == "f"):
        return repr(float(value))
    return str(value)


def describe(values: Mapping[str, Any]) -> str:
    """``axis = value`` pairs joined for a title line."""
    return " · ".join(f"{axis} = {format_value(value)}" for axis, value in values.items())


@dataclass(frozen=True)
class Page:
    """One file of a figure: the split axes' values, and for per-model figures the picked model's values."""

    figure: str
    split: dict[str, Any] = field(hash=False)
    model: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def stem(self) -> str:
        """The file path under results/figures/, without extension."""
        if not self.split:
            return self.figure
        name = "_".join(f"{axis}~{format_value(value)}" for axis, value in self.split.items())
        return f"{self.figure}/{name}"

    @property
    def fixed(self) -> dict[str, Any]:
        """Every axis held at one value in this file."""
        return {**self.split, **self.model}


@dataclass(frozen=True)
class FigureSpec:
    """One figure of one task. ``draw(store, fixed)`` gets the store sliced to one page (split axes
    removed) and the page's fixed values, and returns a matplotlib Figure; titles of the fixed values,
    the theme and saving are added around it."""

    name: str
    task: str
    title: str
    caption: str
    draw: Draw
    facets: tuple[str, ...] = ()
    split: tuple[str, ...] = ()
    summarised: tuple[str, ...] = ("seed",)
    source: str = COMBINED
    pick: dict[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.source not in (COMBINED, MODEL):
            raise ValueError(f"figure {self.name!r}: source {self.source!r} is not {COMBINED!r} or {MODEL!r}")
        if self.pick and self.source != MODEL:
            raise ValueError(f"figure {self.name!r}: only per-model figures pick a model, not {self.source!r} ones")
        unknown = sorted(set(self.pick.values()) - set(PICK_RULES))
        if unknown:
            raise ValueError(f"figure {self.name!r}: pick rules {unknown} are not among {sorted(PICK_RULES)}")

    @property
    def covered(self) -> tuple[str, ...]:
        return (*self.facets, *self.split, *self.summarised, *self.pick)

    def check_axes(self, grid_axes: tuple[str, ...]) -> None:
        """Raise unless the figure covers each of its task's grid axes exactly once."""
        covered = self.covered
        repeated = sorted({axis for axis in covered if covered.count(axis) > 1})
        missing = [axis for axis in grid_axes if axis not in covered]
        foreign = [axis for axis in covered if axis not in grid_axes]
        if repeated or missing or foreign:
            raise ValueError(
                f"figure {self.name!r} must cover each grid axis of task {self.task!r} {list(grid_axes)} once "
                f"(facets, split, summarised or pick); repeated {repeated}, missing {missing}, unknown {foreign}"
            )

    def pages(
        self, grid: Mapping[str, tuple[Any, ...]], blocks: Sequence[Mapping[str, tuple[Any, ...]]] = ()
    ) -> list[Page]:
        """Every file this figure writes for a grid (axis -> values in config order). With the config's
        ``blocks`` (a sparse grid), only pages that some block trains a model for, and a per-model figure
        picks among the models trained at the page's split values."""
        pages = []
        for values in itertools.product(*(grid[axis] for axis in self.split)):
            split = dict(zip(self.split, values))
            holding = [block for block in blocks if all(value in block[axis] for axis, value in split.items())]
            if blocks and not holding:
                continue
            pages.append(Page(self.name, split, self._picked(grid, holding, split)))
        return pages

    def _picked(
        self, grid: Mapping[str, tuple[Any, ...]], holding: list[Mapping[str, tuple[Any, ...]]], split: dict
    ) -> dict[str, Any]:
        """The picked model's values: each pick rule in turn, among the points the holding blocks train."""
        if not holding:
            return {axis: PICK_RULES[rule](tuple(grid[axis])) for axis, rule in self.pick.items()}
        axes = list(self.pick)
        points = [
            combo
            for block in holding
            for combo in itertools.product(*(block[axis] for axis in axes))
        ]
        model: dict[str, Any] = {}
        for position, axis in enumerate(axes):
            values = tuple(dict.fromkeys(point[position] for point in points))
            model[axis] = PICK_RULES[self.pick[axis]](values)
            points = [point for point in points if point[position] == model[axis]]
        return model
