"""The regression config section as typed settings."""

from __future__ import annotations

from dataclasses import dataclass

from headshare.tasks.base import TaskSettings, common_settings, grid_fields, model_axes, sub_grid


@dataclass(frozen=True)
class RegressionSettings(TaskSettings):
    dim: int
    n_context: int
    eval_tasks: int
    seed: int
    generalisation_contexts: tuple[int, ...]
    generalisation_scales: tuple[float, ...]
    generalisation_tasks: int
    curry_contexts: int
    curry_queries: int
    curry_steps: int

    @property
    def depths(self) -> tuple[int, ...]:
        """Every number of layers some grid trains: the K of the K-step references."""
        return tuple(sorted(set(self.grid["n_layers"])))


def regression_settings(config: dict) -> RegressionSettings:
    section = config["regression"]
    grid = section["grid"]
    main = {
        "attention": tuple(grid["attention"]),
        "architecture": tuple(grid["architecture"]),
        **model_axes(grid),
        "seed": tuple(grid["seeds"]),
    }
    extras = tuple(sub_grid(main, {axis: tuple(values) for axis, values in extra.items()}) for extra in section["extra_grids"])
    return RegressionSettings(
        **common_settings(config, "regression"),
        **grid_fields(main, *extras),
        dim=section["dim"],
        n_context=section["n_context"],
        eval_tasks=section["eval_tasks"],
        seed=section["seed"],
        generalisation_contexts=tuple(section["generalisation"]["n_context"]),
        generalisation_scales=tuple(float(s) for s in section["generalisation"]["scale"]),
        generalisation_tasks=section["generalisation"]["tasks"],
        curry_contexts=section["currying"]["contexts"],
        curry_queries=section["currying"]["queries"],
        curry_steps=section["currying"]["steps"],
    )
