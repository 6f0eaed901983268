"""The hmm config section as typed settings: product conditions, emission fidelities, evaluation sizes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from headshare.tasks.base import MODEL_AXES, TaskSettings, common_settings, grid_fields, model_axes, sub_grid
from headshare.tasks.hmm.processes import HMM, build_process, product


@dataclass(frozen=True)
class Factor:
    kind: str
    lam: float


@dataclass(frozen=True)
class Condition:
    """One product-process condition: two independent factors interleaved as one token stream."""

    id: str
    role: str
    factors: tuple[Factor, Factor]

    def factor_processes(self, a: float) -> tuple[HMM, HMM]:
        return tuple(build_process(f.kind, f.lam, a) for f in self.factors)  # type: ignore[return-value]

    def process(self, a: float) -> HMM:
        return product(*self.factor_processes(a))

    @classmethod
    def from_config(cls, entry: dict[str, Any]) -> Condition:
        factors = tuple(Factor(f["kind"], float(f["lambda"])) for f in entry["factors"])
        return cls(id=entry["id"], role=entry.get("role", "preregistered"), factors=factors)  # type: ignore[arg-type]


@dataclass(frozen=True)
class HMMSettings(TaskSettings):
    context: int
    eval_sequences: int
    sensitivity_samples: int
    seed: int
    conditions: tuple[Condition, ...]

    def condition(self, condition_id: str) -> Condition:
        for condition in self.conditions:
            if condition.id == condition_id:
                return condition
        raise ValueError(f"unknown condition {condition_id!r}; known: {[c.id for c in self.conditions]}")


def hmm_settings(config: dict) -> HMMSettings:
    section = config["hmm"]
    conditions = tuple(Condition.from_config(entry) for entry in section["conditions"])
    main = {
        "condition": tuple(condition.id for condition in conditions),
        **model_axes(section["grid"]),
        "a": tuple(float(a) for a in section["emission_fidelity"]),
        "loss": tuple(section["loss_positions"]),
        "seed": tuple(section["grid"]["seeds"]),
    }
    extras = tuple(_extra_grid(main, extra) for extra in section.get("extra_grids", []))
    return HMMSettings(
        **common_settings(config, "hmm"),
        **grid_fields(main, *extras),
        context=section["context"],
        eval_sequences=section["eval_sequences"],
        sensitivity_samples=section["sensitivity_samples"],
        seed=section["seed"],
        conditions=conditions,
    )


_EXTRA_AXES = {"conditions": "condition", "emission_fidelity": "a", "loss_positions": "loss", **{a: a for a in MODEL_AXES}}


def _extra_grid(main: dict[str, tuple[Any, ...]], extra: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """A sub-grid: the main grid with the axes the entry names replaced (the seeds stay the main grid's)."""
    replaced = {_EXTRA_AXES[key]: tuple(values) for key, values in extra.items()}
    if "a" in replaced:
        replaced["a"] = tuple(float(a) for a in replaced["a"])
    return sub_grid(main, replaced)
