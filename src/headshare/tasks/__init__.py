"""The task registry: the one place the stages learn which task families exist.

Built-in tasks are the subpackages of this package, found by walking it, so a new task is a new folder.
Tasks kept elsewhere (a lab's own experiments, or the toy task of the tests) are named in the config's
``task_packages``; importing such a package registers its task. Every stage asks the registry, never a
family name.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

from headshare.tasks.base import Cohort, Member, Task, TaskSettings

_REGISTRY: dict[str, Task] = {}


def register(task_class: type[Task]) -> type[Task]:
    """Class decorator: make a task known to every stage under ``task_class.name``."""
    existing = _REGISTRY.get(task_class.name)
    if existing is not None and type(existing) is not task_class:
        raise ValueError(f"two tasks are named {task_class.name!r}: {type(existing).__qualname__} and {task_class.__qualname__}")
    _REGISTRY[task_class.name] = task_class()
    return task_class


def load(packages: Iterable[str] = ()) -> None:
    """Import the built-in tasks and the extra task ``packages`` (each registers itself)."""
    for module in pkgutil.iter_modules(__path__):
        if module.ispkg:
            importlib.import_module(f"{__name__}.{module.name}")
    for package in packages:
        try:
            importlib.import_module(package)
        except ImportError as error:
            raise ImportError(f"task package {package!r} (config task_packages) cannot be imported: {error}") from None


def get(name: str) -> Task:
    load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(_REGISTRY)}") from None


def all_tasks() -> list[Task]:
    """Every registered task: the built-in ones in folder-name order, then the others in the order they were
    registered (the order never depends on which module happened to be imported first)."""
    load()
    builtin = sorted(name for name, task in _REGISTRY.items() if type(task).__module__.startswith(f"{__name__}."))
    others = [name for name in _REGISTRY if name not in builtin]
    return [_REGISTRY[name] for name in (*builtin, *others)]


def active(config: dict) -> list[Task]:
    """The tasks this config runs: those with a section in it (load its task_packages first)."""
    load(config.get("task_packages", ()))
    return [task for task in all_tasks() if task.name in config]


def configured(config: dict, name: str) -> tuple[Task, TaskSettings]:
    """A task and its typed settings from a validated config: where a job script leaves the raw dict."""
    load(config.get("task_packages", ()))
    task = get(name)
    return task, task.settings(config)


__all__ = ["Cohort", "Member", "Task", "TaskSettings", "active", "all_tasks", "configured", "get", "load", "register"]
