"""Artifacts that tests produce in a subprocess (so that a kill or a hash seed can be applied to it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from headshare import layout, tasks
from headshare.cohort_training import train_cohorts
from headshare.model import EnsembleTransformer, ModelConfig
from headshare.store import write_store
from headshare.tasks.regression.source import RegressionSource
from headshare.training import Batch, TrainConfig, train_ensemble
from helpers.configs import smoke_config


def produce_artifacts(workdir: str) -> None:
    """Every smoke dataset, and the first cohort of each task trained on CPU, written under ``workdir``."""
    torch.set_num_threads(1)
    config = {**smoke_config(), "device": "cpu"}
    for task in tasks.active(config):
        settings = task.settings(config)
        for key in task.dataset_keys(settings):
            write_store(task.build_dataset(settings, key), layout.dataset_store(workdir, task.dataset_name(key)))
        cohort = task.cohorts(settings)[0]
        train_cohorts(
            task,
            settings,
            [cohort],
            [layout.model_file(workdir, member.path, "model.pt") for member in cohort.members],
            [layout.model_file(workdir, member.path, "training.json") for member in cohort.members],
            progress=False,
        )


def small_dataset() -> xr.Dataset:
    values = np.arange(600, dtype=np.float64).reshape(20, 30) / 7
    return xr.Dataset({"first": (("row", "column"), values), "second": (("row",), np.arange(20))})


TINY = ModelConfig(input_dim=4, n_ctx=5, d_model=8, n_heads=1, d_head=4, d_out=1, attention="linear", positional=False)
TINY_TRAINING = TrainConfig(max_steps=10, batch_size=16, warmup_steps=2, log_every=2, checkpoint_every=2, device="cpu")


def tiny_training(checkpoint: Path | None, source: Callable[[int], Batch] | None = None) -> EnsembleTransformer:
    """Two in-context regression models trained for 10 steps (resuming from ``checkpoint`` if it exists)."""
    model = EnsembleTransformer.from_seeds(TINY, [3, 4])
    source = source or RegressionSource(seeds=[3, 4], batch_size=16, d=3, n_context=4)
    train_ensemble(
        model, source, TINY_TRAINING, "mse", model_names=["a", "b"], progress=False, checkpoint_path=checkpoint
    )
    return model
