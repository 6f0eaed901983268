"""Which grid points of a store a prediction's ``condition`` picks, and how a row names its point.

A selector axis is one value, a list of values, or an inclusive range {min, max}; values match the store's
grid coordinates with the one tolerance of :mod:`headshare.grid`, the same one figures use. An axis the
selector leaves free gets one row per value in the store.
"""

from __future__ import annotations

import itertools

import xarray as xr

from headshare.grid import same_value


def selections(store: xr.Dataset, selector: dict, axes: tuple[str, ...], swept: tuple[str, ...] = ()) -> list[dict] | str:
    """Every grid point the selector picks on ``axes``, one per combination of the axes not in ``swept``
    (a swept axis keeps the list of its picked values); a string saying what is absent when the selector
    picks nothing on some axis."""
    chosen: dict[str, list] = {}
    for axis in axes:
        have = [value.item() if hasattr(value, "item") else value for value in store[axis].values]
        keep = [value for value in have if selected(value, selector.get(axis))]
        if not keep:
            return (
                f"not in this run's config: {axis} {format_value(selector[axis])} "
                f"(this run has {', '.join(format_value(value) for value in have)})"
            )
        chosen[axis] = keep
    kept = {axis: chosen.pop(axis) for axis in swept}
    return [{**dict(zip(chosen, combo)), **kept} for combo in itertools.product(*chosen.values())]


def selected(value, selector) -> bool:
    """Whether the store's grid value ``value`` is picked by ``selector`` (None picks everything)."""
    if selector is None:
        return True
    if isinstance(selector, dict):
        if isinstance(value, str):
            return False  # a range picks numbers only
        low, high = selector.get("min"), selector.get("max")
        above = low is None or value >= low or same_value(value, low)
        below = high is None or value <= high or same_value(value, high)
        return above and below
    if isinstance(selector, list):
        return any(selected(value, item) for item in selector)
    return same_value(value, selector)


def describe(selection: dict) -> str:
    """'c (a=0.85, n_heads=2)': the condition id first when the task has one, then the other axes."""
    others = ", ".join(f"{key}={format_value(value)}" for key, value in selection.items() if key != "condition")
    if "condition" not in selection:
        return others
    return selection["condition"] + (f" ({others})" if others else "")


def format_value(value) -> str:
    if isinstance(value, list):
        return ",".join(format_value(item) for item in value)
    if isinstance(value, dict):
        if "min" in value and "max" in value:
            return f"{value['min']:g}..{value['max']:g}"
        return f">={value['min']:g}" if "min" in value else f"<={value['max']:g}"
    return f"{value:g}" if isinstance(value, float) else str(value)
