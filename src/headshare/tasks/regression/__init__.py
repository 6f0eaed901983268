"""In-context linear regression (SCIENCE.md §6, §9): is a trained attention layer one step of gradient descent,
a K-layer model K steps (or GD++), and is a context a weight update?

Tokens are (x, y) pairs of a random linear task and a final query x; the model predicts the query's y.
Attention reads the context only (von Oswald et al.'s layout: the query is never a key), so each layer can
update every context token with the whole context, as a step of gradient descent does. Cohorts share
(attention kind, architecture, n_layers, n_heads, d_head); members are seeds. ``extra_grids`` add deeper,
recurrent or MLP-first models without multiplying the whole grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headshare.tasks import register
from headshare.tasks.base import Cohort, Member, Task, transformer_shape
from headshare.tasks.regression.contract import COMBINED_STORE, GRID_AXES, MODEL_STORE, REFERENCES
from headshare.tasks.regression.settings import RegressionSettings, regression_settings

if TYPE_CHECKING:
    import torch
    import xarray as xr

    from headshare.model import EnsembleTransformer, ModelConfig
    from headshare.training import BatchSource, Evaluator


@register
class RegressionTask(Task):
    name = "regression"
    cohort_axes = GRID_AXES[:-1]
    cohort_template = "regression/attn~{attention}_{architecture}/L~{n_layers}_h~{n_heads}_dh~{d_head}"
    member_template = "seed~{seed}"
    dataset_template = "regression"
    chunk_axes = ("attention",)
    schema_file = Path(__file__).with_name("schema.yaml")
    model_store = MODEL_STORE
    combined_store = COMBINED_STORE

    def settings(self, config: dict) -> RegressionSettings:
        return regression_settings(config)

    def dataset_parameters(self, settings: RegressionSettings, key: dict[str, Any]) -> dict[str, Any]:
        return {
            "dim": settings.dim,
            "n_context": settings.n_context,
            "eval_tasks": settings.eval_tasks,
            "seed": settings.seed,
            "generalisation": {
                "n_context": settings.generalisation_contexts,
                "scale": settings.generalisation_scales,
                "tasks": settings.generalisation_tasks,
            },
            "depths": settings.depths,
        }

    def build_dataset(self, settings: RegressionSettings, key: dict[str, Any]) -> xr.Dataset:
        from headshare.tasks.regression.dataset import regression_dataset

        return regression_dataset(settings)

    def model_config(self, settings: RegressionSettings, cohort: Cohort) -> ModelConfig:
        from headshare.model_config import ModelConfig

        architecture = cohort.coords["architecture"]
        shape = transformer_shape(settings, cohort)
        return ModelConfig(
            n_ctx=settings.n_context + 1,
            input_dim=settings.dim + 1,
            d_out=1,
            attention=cohort.coords["attention"],
            positional=False,
            mask="context",
            **{**shape, "mlp": shape["mlp"] or architecture == "mlp_first"},
            recurrent=architecture == "recurrent",
            mlp_first=architecture == "mlp_first",
        )

    def batch_source(
        self, settings: RegressionSettings, members: Sequence[Member], seeds: list[int], batch_size: int
    ) -> tuple[BatchSource, str]:
        from headshare.tasks.regression.source import RegressionSource
        from headshare.training import sampling_device

        source = RegressionSource(
            seeds=seeds, batch_size=batch_size, d=settings.dim, n_context=settings.n_context,
            device=sampling_device(settings.device),
        )
        return source, "mse"

    def evaluator(self, settings: RegressionSettings, cohort: Cohort) -> Evaluator:
        from headshare.tasks.regression.evaluate import RegressionEvaluator

        return RegressionEvaluator(settings, settings.training["eval_sequences"])

    def add_references(
        self, settings: RegressionSettings, combined: xr.Dataset, datasets: dict[tuple[Any, ...], xr.Dataset]
    ) -> xr.Dataset:
        """The evaluation set's references (attrs) and its GD and least-squares losses per (N, alpha)."""
        (data,) = datasets.values()
        combined = super().add_references(settings, combined, datasets)
        return combined.assign({name: data[name].load() for name in REFERENCES})

    def extract(
        self, settings: RegressionSettings, cohort: Cohort, model: EnsembleTransformer, datasets: list[xr.Dataset],
        device: torch.device,
    ) -> list[xr.Dataset]:
        from headshare.tasks.regression.extract import extract_regression

        return extract_regression(settings, model, datasets[0], device)
