"""Which cohorts train together as one ensemble (the config's ``grouping``).

- ``cohort``: every cohort trains alone, one job each. The CPU default: a family's larger ensemble only
  wins back the arithmetic its masked heads waste (``python benchmarks/train.py``), while many small
  one-thread jobs keep the cores busy, and each ends as soon as its own cohort has converged.
- ``family``: every cohort of a task whose models differ at most in their number of heads trains as one
  ensemble, in one job. Members with fewer heads ride along with zero-padded heads masked out of every
  forward pass (:func:`headshare.model.with_heads`), so a whole family takes one optimizer step per
  iteration instead of one per cohort: what a GPU needs to be busy.

Either way each member trains on its own stream from its own initial weights, is evaluated by its own
cohort's evaluator and stops on its own curve, so its files do not depend on the grouping beyond float
rounding (tests/test_grouping.py trains a cohort both ways).

Shapes are compared as ``ModelConfig`` values (headshare.model_config), which parsing the workflow can
import without torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from headshare.tasks.base import Cohort, Member, Task, TaskSettings

if TYPE_CHECKING:
    from headshare.model_config import ModelConfig

GROUPINGS = ("cohort", "family")


@dataclass(frozen=True)
class TrainingGroup:
    """Cohorts of one task trained as one ensemble, in one job; members in cohort order."""

    task: str
    cohorts: tuple[Cohort, ...]

    @property
    def name(self) -> str:
        """The cohort's own name for a group of one; else a name fixed by the member cohorts, so that a
        changed grid never resumes another group's checkpoint."""
        if len(self.cohorts) == 1:
            return self.cohorts[0].name
        digest = hashlib.sha256("\n".join(c.name for c in self.cohorts).encode()).hexdigest()[:12]
        return f"{self.task}/family~{digest}"

    @property
    def members(self) -> list[Member]:
        return [member for cohort in self.cohorts for member in cohort.members]


def training_groups(task: Task, settings: TaskSettings, grouping: str) -> list[TrainingGroup]:
    """The config's cohorts of ``task`` grouped by ``grouping`` (one of GROUPINGS), in cohort order."""
    if grouping not in GROUPINGS:
        raise ValueError(f"grouping must be one of {GROUPINGS}, got {grouping!r}")
    cohorts = task.cohorts(settings)
    if grouping == "cohort":
        return [TrainingGroup(task.name, (cohort,)) for cohort in cohorts]
    families: dict[ModelConfig, list[Cohort]] = {}
    for cohort in cohorts:
        shape = dataclasses.replace(task.model_config(settings, cohort), n_heads=1)
        families.setdefault(shape, []).append(cohort)
    return [TrainingGroup(task.name, tuple(members)) for members in families.values()]


def family_config(configs: Sequence[ModelConfig]) -> ModelConfig:
    """The ensemble shape of models ``configs``: theirs, with the most heads among them. Raises if they
    differ in anything but n_heads."""
    widest = max(configs, key=lambda cfg: cfg.n_heads)
    others = {dataclasses.replace(cfg, n_heads=widest.n_heads) for cfg in configs}
    if len(others) != 1:
        raise ValueError(f"models trained as one ensemble may differ in n_heads only; got {configs}")
    return widest
