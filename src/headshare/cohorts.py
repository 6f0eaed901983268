"""The model grid, split into cohorts: models of one shape and task that train together as one ensemble.

A cohort shares everything that fixes the tensor shapes and the loss (family, condition, n_heads, d_head,
attention kind); its members differ in what only changes values or loss weights (emission fidelity a,
which positions carry the loss, seed). Larger ensembles amortise the per-step overhead of small models. Paths of cohorts and members come from the templates below, which the Snakemake rules use too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from headshare.config import condition_by_id, grid_points
from headshare.data.readoff import N_CLASSES, VOCAB_SIZE
from headshare.model import ModelConfig

FAMILIES = ("hmm", "readoff", "regression")
COHORT_TEMPLATES = {
    "hmm": "hmm/{condition}/h~{n_heads}_dh~{d_head}",
    "readoff": "readoff/h~{n_heads}_dh~{d_head}",
    "regression": "regression/attn~{attention}_h~{n_heads}_dh~{d_head}",
}
MEMBER_TEMPLATES = {"hmm": "a~{a}_loss~{loss}_seed~{seed}", "readoff": "seed~{seed}", "regression": "seed~{seed}"}


@dataclass(frozen=True)
class Member:
    """One model: its cohort's coordinates plus its own (a, seed)."""

    family: str
    cohort: str
    name: str
    coords: dict[str, Any] = field(hash=False)

    @property
    def path(self) -> str:
        return f"{self.cohort}/{self.name}"


@dataclass(frozen=True)
class Cohort:
    family: str
    name: str
    coords: dict[str, Any] = field(hash=False)
    members: tuple[Member, ...]


def member_grid(config: dict, family: str) -> list[dict[str, Any]]:
    """Coordinates that vary within a cohort, in config order."""
    if family == "hmm":
        return [
            {"a": a, "loss": loss, "seed": seed}
            for a in config["hmm"]["emission_fidelity"]
            for loss in config["hmm"]["loss_positions"]
            for seed in config["hmm"]["grid"]["seeds"]
        ]
    return [{"seed": seed} for seed in config[family]["grid"]["seeds"]]


def cohort_grid(config: dict, family: str) -> list[dict[str, Any]]:
    """Coordinates shared within a cohort, in config order."""
    grid = config[family]["grid"]
    if family == "hmm":
        return [
            {"condition": condition["id"], **point}
            for condition in config["hmm"]["conditions"]
            for point in grid_points(grid, ("n_heads", "d_head"))
        ]
    if family == "readoff":
        return grid_points(grid, ("n_heads", "d_head"))
    return grid_points(grid, ("attention", "n_heads", "d_head"))


def cohorts(config: dict, family: str) -> list[Cohort]:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; allowed: {', '.join(FAMILIES)}")
    result = []
    for shared in cohort_grid(config, family):
        name = COHORT_TEMPLATES[family].format(**shared)
        members = tuple(
            Member(family, name, MEMBER_TEMPLATES[family].format(**own), {**shared, **own})
            for own in member_grid(config, family)
        )
        result.append(Cohort(family, name, shared, members))
    return result


def find_cohort(config: dict, family: str, name: str) -> Cohort:
    for cohort in cohorts(config, family):
        if cohort.name == name:
            return cohort
    raise ValueError(f"no {family} cohort named {name!r} in this config")


def model_config(config: dict, cohort: Cohort) -> ModelConfig:
    """The transformer shape of a cohort's models."""
    model = config["model"]
    shared = dict(
        d_model=model["d_model"],
        n_layers=model["n_layers"],
        layernorm=model["layernorm"],
        mlp=model["mlp"],
        n_heads=cohort.coords["n_heads"],
        d_head=cohort.coords["d_head"],
    )
    if cohort.family == "hmm":
        condition = condition_by_id(config, cohort.coords["condition"])
        vocab = 1
        for process in condition.factor_processes(config["hmm"]["emission_fidelity"][0]):
            vocab *= process.n_tokens
        return ModelConfig(n_ctx=config["hmm"]["context"], vocab_size=vocab, d_out=vocab, **shared)
    if cohort.family == "readoff":
        return ModelConfig(n_ctx=config["readoff"]["length"], vocab_size=VOCAB_SIZE, d_out=N_CLASSES, **shared)
    settings = config["regression"]
    return ModelConfig(
        n_ctx=settings["n_context"] + 1,
        input_dim=settings["dim"] + 1,
        d_out=1,
        attention=cohort.coords["attention"],
        positional=False,
        **shared,
    )
