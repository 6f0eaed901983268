"""Products of two hidden Markov processes interleaved as one token stream (SCIENCE.md §1-§4).

The models predict the next token; the exact Bayes filter of the product gives the optimum, the belief
states and the filter's own forgetting rate, against which loss, attention decay, belief geometry and
head roles are measured. A cohort is one (condition, a, loss position, shape); its members are the seeds.
Besides the main grid, ``extra_grids`` add sub-grids for some conditions (e.g. last-position training and
an a sweep towards 1/3 for the decay claims) without multiplying the whole grid.
"""

from __future__ import annotations

from dataclasses import asdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headshare.tasks import register
from headshare.tasks.base import Cohort, Member, Task, transformer_shape
from headshare.tasks.hmm.contract import COMBINED_STORE, GRID_AXES, MODEL_STORE
from headshare.tasks.hmm.settings import HMMSettings, hmm_settings

if TYPE_CHECKING:
    import torch
    import xarray as xr

    from headshare.model import EnsembleTransformer, ModelConfig
    from headshare.training import BatchSource, Evaluator


@register
class HMMTask(Task):
    name = "hmm"
    cohort_axes = GRID_AXES[:-1]
    dataset_axes = ("condition", "a")
    cohort_template = "hmm/{condition}/a~{a}_loss~{loss}/L~{n_layers}_h~{n_heads}_dh~{d_head}"
    member_template = "seed~{seed}"
    dataset_template = "hmm/{condition}/a~{a}"
    chunk_axes = ("condition", "a", "loss")
    schema_file = Path(__file__).with_name("schema.yaml")
    model_store = MODEL_STORE
    combined_store = COMBINED_STORE

    def validate(self, config: dict) -> None:
        """Unique condition ids, extra grids naming known conditions, and every factor buildable at every
        emission fidelity it is trained at."""
        from headshare.config import ConfigError

        section = config["hmm"]
        ids: list[str] = []
        for index, condition in enumerate(section["conditions"]):
            if condition["id"] in ids:
                raise ConfigError(
                    f"config.hmm.conditions[{index}] ({condition['id']}): duplicate id {condition['id']!r}; "
                    "condition ids must be unique"
                )
            ids.append(condition["id"])
        for index, condition in enumerate(section["conditions"]):
            _check_buildable(condition, section["emission_fidelity"], f"config.hmm.conditions[{index}] ({condition['id']})")
        for index, extra in enumerate(section.get("extra_grids", [])):
            where = f"config.hmm.extra_grids[{index}]"
            unknown = [id_ for id_ in extra.get("conditions", ids) if id_ not in ids]
            if unknown:
                raise ConfigError(f"{where}.conditions: unknown condition {unknown[0]!r}; the conditions are {ids}")
            for condition in section["conditions"]:
                if condition["id"] in extra.get("conditions", ids):
                    _check_buildable(condition, extra.get("emission_fidelity", []), f"{where} ({condition['id']})")

    def settings(self, config: dict) -> HMMSettings:
        return hmm_settings(config)

    def dataset_parameters(self, settings: HMMSettings, key: dict[str, Any]) -> dict[str, Any]:
        return {
            "condition": asdict(settings.condition(key["condition"])),
            "a": key["a"],
            "context": settings.context,
            "eval_sequences": settings.eval_sequences,
            "sensitivity_samples": settings.sensitivity_samples,
            "seed": settings.seed,
        }

    def build_dataset(self, settings: HMMSettings, key: dict[str, Any]) -> xr.Dataset:
        from headshare.tasks.hmm.dataset import hmm_dataset

        return hmm_dataset(settings, key["condition"], key["a"])

    def model_config(self, settings: HMMSettings, cohort: Cohort) -> ModelConfig:
        from headshare.model_config import ModelConfig

        processes = settings.condition(cohort.coords["condition"]).factor_processes(cohort.coords["a"])
        vocab = processes[0].n_tokens * processes[1].n_tokens
        return ModelConfig(n_ctx=settings.context, vocab_size=vocab, d_out=vocab, **transformer_shape(settings, cohort))

    def batch_source(
        self, settings: HMMSettings, members: Sequence[Member], seeds: list[int], batch_size: int
    ) -> tuple[BatchSource, str]:
        from headshare.tasks.hmm.source import HMMSource
        from headshare.training import sampling_device

        source = HMMSource(
            processes=[settings.condition(m.coords["condition"]).factor_processes(m.coords["a"]) for m in members],
            seeds=seeds,
            batch_size=batch_size,
            n_ctx=settings.context,
            last_only=[member.coords["loss"] == "last" for member in members],
            device=sampling_device(settings.device),
        )
        return source, "xent"

    def evaluator(self, settings: HMMSettings, cohort: Cohort) -> Evaluator:
        from headshare.tasks.hmm.evaluate import HMMEvaluator

        return HMMEvaluator(settings, cohort, settings.training["eval_sequences"])

    def extract(
        self, settings: HMMSettings, cohort: Cohort, model: EnsembleTransformer, datasets: list[xr.Dataset],
        device: torch.device,
    ) -> list[xr.Dataset]:
        from headshare.tasks.hmm.extract import extract_hmm

        return extract_hmm(cohort, model, datasets, device)

    def add_references(
        self, settings: HMMSettings, combined: xr.Dataset, datasets: dict[tuple[Any, ...], xr.Dataset]
    ) -> xr.Dataset:
        from headshare.tasks.hmm.references import add_references

        return add_references(settings, combined, datasets)


def _check_buildable(condition: dict[str, Any], fidelities: list[float], where: str) -> None:
    """ConfigError naming ``where`` unless both factors of ``condition`` can be built at every fidelity."""
    from headshare.config import ConfigError
    from headshare.tasks.hmm.processes import ProcessError, build_process

    for position, factor in enumerate(condition["factors"]):
        for a in fidelities:
            try:
                build_process(factor["kind"], factor["lambda"], a)
            except ProcessError as error:
                raise ConfigError(f"{where}.factors[{position}]: {error}") from None
