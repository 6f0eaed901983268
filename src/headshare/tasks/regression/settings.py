"""The regression config section as typed settings."""

from __future__ import annotations

from dataclasses import dataclass

from headshare.tasks.base import TaskSettings, common_settings, grid_fields, model_axes


@dataclass(frozen=True)
class RegressionSettings(TaskSettings):
    dim: int
    n_context: int
    eval_tasks: int
    seed: int
    generalisation_contexts: tuple[int, ...]
    generalisation_scales: tuple[float, ...]
    generalisation_tasks: int


def regression_settings(config: dict) -> RegressionSettings:
    section = config["regression"]
    grid = section["grid"]
    return RegressionSettings(
        **common_settings(config, "regression"),
        **grid_fields({"attention": tuple(grid["attention"]), **model_axes(grid), "seed": tuple(grid["seeds"])}),
        dim=section["dim"],
        n_context=section["n_context"],
        eval_tasks=section["eval_tasks"],
        seed=section["seed"],
        generalisation_contexts=tuple(section["generalisation"]["n_context"]),
        generalisation_scales=tuple(float(s) for s in section["generalisation"]["scale"]),
        generalisation_tasks=section["generalisation"]["tasks"],
    )
