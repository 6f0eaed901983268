"""The readoff config section as typed settings."""

from __future__ import annotations

from dataclasses import dataclass

from headshare.tasks.base import TaskSettings, common_settings, grid_fields, model_axes


@dataclass(frozen=True)
class ReadoffSettings(TaskSettings):
    length: int
    eval_sequences: int
    seed: int


def readoff_settings(config: dict) -> ReadoffSettings:
    section = config["readoff"]
    return ReadoffSettings(
        **common_settings(config, "readoff"),
        **grid_fields({**model_axes(section["grid"]), "seed": tuple(section["grid"]["seeds"])}),
        length=section["length"],
        eval_sequences=section["eval_sequences"],
        seed=section["seed"],
    )
