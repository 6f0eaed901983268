"""What a rendered figure shows, and synthetic stores on any grid, for tests of figures."""


from __future__ import annotations

import re

import xarray as xr
import yaml
from matplotlib.figure import Figure

from headshare import tasks
from headshare.config import validate_config
from headshare.figures.spec import format_value
from helpers.configs import deep_merge, default_config
from helpers.paths import SWEEP_CONFIG
from helpers.synthetic import (
    DEFAULT_CONDITIONS,
    synthetic_hmm_store,
    synthetic_readoff_store,
    synthetic_regression_store,
)

MAX_HEIGHT = 24.0  # inches: a tall page, still one screen-scroll per figure


def synthetic_store(task: str, grid: dict[str, tuple], conditions=DEFAULT_CONDITIONS) -> xr.Dataset:
    """A combined store of ``task`` over ``grid`` (the axes each builder takes)."""
    shape = {"n_layers": grid["n_layers"], "n_heads": grid["n_heads"], "d_head": grid["d_head"], "seeds": grid["seed"]}
    if task == "hmm":
        return synthetic_hmm_store(conditions=conditions, a=grid["a"], loss=grid["loss"], **shape)
    if task == "readoff":
        return synthetic_readoff_store(**shape)
    return synthetic_regression_store(architecture=grid["architecture"], **shape)


def grid_of(store: xr.Dataset, task: str) -> dict[str, tuple]:
    return {axis: tuple(store[axis].values.tolist()) for axis in tasks.get(task).grid_axes}


def shown_texts(fig: Figure) -> list[str]:
    """Every title, legend entry and tick label (prefixed by its axis label) of a figure."""
    texts = [fig.get_suptitle()]
    for legend in [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]:
        texts += [legend.get_title().get_text()] + [text.get_text() for text in legend.get_texts()]
    for ax in fig.axes:
        texts.append(ax.get_title())
        texts += [f"{ax.get_xlabel()} = {tick.get_text()}" for tick in ax.get_xticklabels()]
        texts += [f"{ax.get_ylabel()} = {tick.get_text()}" for tick in ax.get_yticklabels()]
    return texts


def shows(texts: list[str], axis: str, value) -> bool:
    """Whether a value is named: ``axis = value`` or ``axis ∈ {..., value, ...}`` (an axis label may carry
    a parenthesised unit); a string value may also stand on its own."""
    shown = re.escape(format_value(value))
    named = rf"(?<!\w){re.escape(axis)}(?: \([^)]*\))? (?:= |∈ \{{(?:[^}}]*, )?){shown}(?![\w.])"
    alone = rf"(?<![\w.-]){shown}(?![\w.])"
    pattern = alone if isinstance(value, str) else named
    return any(re.search(pattern, text) for text in texts)


def sweep_settings() -> dict:
    sweep = yaml.safe_load(SWEEP_CONFIG.read_text())
    config = validate_config(deep_merge(default_config(), sweep))
    return {task.name: task.settings(config) for task in tasks.active(config)}
