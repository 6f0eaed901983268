"""The quantity registry: every task folder's ``quantities.py``, found through the task registry.

A task declares its scoring quantities beside its code (``headshare/tasks/<task>/quantities.py``, a
``QUANTITIES`` tuple), so a new task brings its quantities with its folder and nothing here names a task.
"""

from __future__ import annotations

import importlib
import importlib.util

from headshare import tasks
from headshare.scoring.quantity import Quantity
from headshare.tasks.base import Task


def quantities() -> dict[str, Quantity]:
    """Every registered task's quantities by name, in task order then declaration order."""
    found: dict[str, Quantity] = {}
    for task in tasks.all_tasks():
        for quantity in task_quantities(task):
            if quantity.name in found:
                raise ValueError(
                    f"two quantities are named {quantity.name!r} (tasks {found[quantity.name].task} and {task.name})"
                )
            found[quantity.name] = quantity
    return found


def get(name: str) -> Quantity:
    """The quantity ``name``; ValueError listing the registered ones."""
    registered = quantities()
    try:
        return registered[name]
    except KeyError:
        raise ValueError(f"unknown quantity {name!r}; registered: {', '.join(registered)}") from None


def task_quantities(task: Task) -> tuple[Quantity, ...]:
    """The ``QUANTITIES`` of the ``quantities`` module beside ``task``'s class; none without that module."""
    package = importlib.import_module(type(task).__module__).__package__
    if not package or importlib.util.find_spec(f"{package}.quantities") is None:
        return ()
    declared = tuple(importlib.import_module(f"{package}.quantities").QUANTITIES)
    for quantity in declared:
        if quantity.task != task.name:
            raise ValueError(
                f"{package}.quantities declares {quantity.name!r} for task {quantity.task!r}, not {task.name!r}"
            )
    return declared
