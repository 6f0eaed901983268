"""The figure registry: every task's figures, read from the ``figures`` module of the task's own package.

A task declares its figures in ``<task package>/figures.py`` as ``FIGURES = (FigureSpec(...), ...)``;
a task without that module has no figures. Tasks are found through the task registry only, so a new
task brings its figures with its folder.
"""

from __future__ import annotations

import importlib
import importlib.util

from headshare import tasks
from headshare.figures.spec import FigureSpec
from headshare.tasks.base import Task


def _task_package(task: Task) -> str:
    """The package a task's class lives in (the class may sit in the package or in one of its modules)."""
    module = importlib.import_module(type(task).__module__)
    return module.__name__ if hasattr(module, "__path__") else module.__name__.rpartition(".")[0]


def task_figures(task: Task) -> tuple[FigureSpec, ...]:
    """The figures a task declares, each checked to cover the task's grid axes exactly once."""
    name = f"{_task_package(task)}.figures"
    if importlib.util.find_spec(name) is None:
        return ()
    declared = tuple(importlib.import_module(name).FIGURES)
    for spec in declared:
        if spec.task != task.name:
            raise ValueError(f"{name} declares figure {spec.name!r} for task {spec.task!r}, not {task.name!r}")
        spec.check_axes(task.grid_axes)
    return declared


def figures_of(task_list: list[Task]) -> list[FigureSpec]:
    """The figures of the given tasks, in task order; figure names are unique across them."""
    found: dict[str, FigureSpec] = {}
    for task in task_list:
        for spec in task_figures(task):
            if spec.name in found:
                raise ValueError(f"two figures are named {spec.name!r} (tasks {found[spec.name].task!r} and {task.name!r})")
            found[spec.name] = spec
    return list(found.values())


def all_figures() -> list[FigureSpec]:
    """Every figure of every registered task."""
    return figures_of(tasks.all_tasks())


def get(name: str) -> FigureSpec:
    for spec in all_figures():
        if spec.name == name:
            return spec
    raise ValueError(f"unknown figure {name!r}; known: {', '.join(spec.name for spec in all_figures())}")
