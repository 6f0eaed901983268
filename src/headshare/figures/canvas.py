"""Page-sized figures: the plot theme, panels wrapped into at most four columns, one side legend, saving.

Figures are bare ``matplotlib.figure.Figure`` objects (no pyplot state), so rendering is headless and
figures can be inspected in tests without being written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

THEME = {
    **sns.axes_style("whitegrid"),
    **sns.plotting_context("paper", font_scale=1.0),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "figure.titlesize": "medium",
    "figure.labelsize": "medium",
    "axes.titlesize": "small",
}
MAX_COLUMNS = 4
MAX_WIDTH = 16.0  # inches: panels shrink to keep a figure within a landscape page
MIN_WIDTH = 7.0  # inches: panels widen so that the title lines fit above a page of one or two panels
PANEL = (3.2, 2.4)  # inches per panel
LEGEND_WIDTH = 2.2  # inches beside the panels for a figure legend
TITLE_HEIGHT = 1.0  # inches above the panels for the title lines


def themed() -> matplotlib.rc_context:
    """The project's plot theme, without touching global rc state."""
    return matplotlib.rc_context(THEME)


def panel_grid(
    n_panels: int,
    *,
    columns: int = MAX_COLUMNS,
    panel: tuple[float, float] = PANEL,
    legend: bool = False,
    sharex: bool = True,
    sharey: bool = True,
) -> tuple[Figure, list[Axes]]:
    """``n_panels`` axes in row-major order, wrapped after ``min(columns, 4)`` columns; unused cells removed.

    Panels narrow as needed to keep the figure, legend included, at most ``MAX_WIDTH`` inches wide, and widen
    to make it at least ``MIN_WIDTH``.
    """
    if n_panels < 1:
        raise ValueError(f"a figure needs at least 1 panel, got {n_panels}")
    n_cols = max(1, min(columns, MAX_COLUMNS, n_panels))
    n_rows = math.ceil(n_panels / n_cols)
    extra = LEGEND_WIDTH if legend else 0.0
    width = min(max(panel[0], (MIN_WIDTH - extra) / n_cols), (MAX_WIDTH - extra) / n_cols)
    fig = Figure(figsize=(width * n_cols + extra, panel[1] * n_rows + TITLE_HEIGHT), layout="constrained")
    grid = fig.subplots(n_rows, n_cols, sharex=sharex, sharey=sharey, squeeze=False)
    axes = list(grid.flat)
    for ax in axes[n_panels:]:
        fig.delaxes(ax)
    for ax in axes[:n_panels]:  # shared axes: label ticks wherever a panel has no neighbour below
        ax.tick_params(labelbottom=True)
    return fig, axes[:n_panels]


def side_legend(fig: Figure, handles: Sequence, title: str | None = None) -> None:
    """One legend for all panels, outside them on the right."""
    fig.legend(handles=list(handles), title=title, loc="outside right center", frameon=False, fontsize="small",
               title_fontsize="small")


def finite_max(values: np.ndarray, default: float) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.max()) if finite.size else default


def save(fig: Figure, stem: Path, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Write ``<stem>.<format>`` for each format; PDFs carry no date, so reruns give identical files.

    The layout computed for the first format is frozen before the next is written: the same positions,
    without paying for the layout pass twice.
    """
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        fig.savefig(path, metadata={"CreationDate": None} if fmt == "pdf" else None)
        fig.set_layout_engine("none")
        paths.append(path)
    return paths
