"""The readoff task (SCIENCE.md §5): name the unordered pair of signal tokens in a sequence.

It probes attention-head superposition: with n_heads = 2 and d_head = 1 the two heads are expected to rank
the signal tokens in opposite orders. Cohorts share (n_layers, n_heads, d_head); members are seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headshare.tasks import register
from headshare.tasks.base import Cohort, Member, Task, transformer_shape
from headshare.tasks.readoff.contract import COMBINED_STORE, GRID_AXES, MODEL_STORE
from headshare.tasks.readoff.sampler import N_CLASSES, VOCAB_SIZE
from headshare.tasks.readoff.settings import ReadoffSettings, readoff_settings

if TYPE_CHECKING:
    import torch
    import xarray as xr

    from headshare.model import EnsembleTransformer, ModelConfig
    from headshare.training import BatchSource, Evaluator


@register
class ReadoffTask(Task):
    name = "readoff"
    cohort_axes = GRID_AXES[:3]
    member_axes = GRID_AXES[3:]
    cohort_template = "readoff/L~{n_layers}_h~{n_heads}_dh~{d_head}"
    member_template = "seed~{seed}"
    dataset_template = "readoff"
    schema_file = Path(__file__).with_name("schema.yaml")
    model_store = MODEL_STORE
    combined_store = COMBINED_STORE

    def settings(self, config: dict) -> ReadoffSettings:
        return readoff_settings(config)

    def dataset_parameters(self, settings: ReadoffSettings, key: dict[str, Any]) -> dict[str, Any]:
        return {"length": settings.length, "eval_sequences": settings.eval_sequences, "seed": settings.seed}

    def build_dataset(self, settings: ReadoffSettings, key: dict[str, Any]) -> xr.Dataset:
        from headshare.tasks.readoff.dataset import readoff_dataset

        return readoff_dataset(settings)

    def model_config(self, settings: ReadoffSettings, cohort: Cohort) -> ModelConfig:
        from headshare.model_config import ModelConfig

        return ModelConfig(
            n_ctx=settings.length, vocab_size=VOCAB_SIZE, d_out=N_CLASSES, **transformer_shape(settings, cohort)
        )

    def batch_source(
        self, settings: ReadoffSettings, members: Sequence[Member], seeds: list[int], batch_size: int
    ) -> tuple[BatchSource, str]:
        from headshare.tasks.readoff.source import ReadoffSource
        from headshare.training import sampling_device

        source = ReadoffSource(
            seeds=seeds, batch_size=batch_size, n_ctx=settings.length, device=sampling_device(settings.device)
        )
        return source, "xent"

    def evaluator(self, settings: ReadoffSettings, cohort: Cohort) -> Evaluator:
        from headshare.tasks.readoff.evaluate import ReadoffEvaluator

        return ReadoffEvaluator(settings, settings.training["eval_sequences"])

    def extract(
        self, settings: ReadoffSettings, cohort: Cohort, model: EnsembleTransformer, datasets: list[xr.Dataset],
        device: torch.device,
    ) -> list[xr.Dataset]:
        from headshare.tasks.readoff.extract import extract_readoff

        return extract_readoff(model, datasets[0], device)
