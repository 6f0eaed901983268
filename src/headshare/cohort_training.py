"""Train one cohort of the config's grid and write one folder per model (weights + training record).

Glue between the config grid (headshare.cohorts) and the ensemble trainer (headshare.training): it builds
the data source and the ensemble, trains them together, then splits the ensemble into per-model files so
that every later stage (and every user) handles models one at a time.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from headshare.checkpoint import load_ensemble, save_ensemble
from headshare.cohorts import Cohort, model_config
from headshare.config import condition_by_id
from headshare.model import EnsembleTransformer, ModelConfig
from headshare.provenance import provenance_attrs, to_jsonable
from headshare.seeding import derived_seed
from headshare.training import (
    BatchSource,
    HMMSource,
    ReadoffSource,
    RegressionSource,
    TrainConfig,
    TrainResult,
    train_ensemble,
)


def init_seed(family: str, seed: int) -> int:
    """Initial weights depend on (family, seed) only: models of one shape and seed start identical across
    conditions and emission fidelities, so comparisons between conditions are paired."""
    return derived_seed(seed, "init", family)


def data_seed(member_coords: dict[str, Any], family: str) -> int:
    """Each model's training stream depends on its own coordinates only, never on its cohort's size."""
    labels = [member_coords[key] for key in sorted(member_coords)]
    return derived_seed(member_coords["seed"], "train-data", family, *labels)


def batch_source(config: dict, cohort: Cohort, batch_size: int) -> tuple[BatchSource, str]:
    """The fresh-sample source of a cohort and its loss ("xent" or "mse")."""
    seeds = [data_seed(member.coords, cohort.family) for member in cohort.members]
    if cohort.family == "hmm":
        condition = condition_by_id(config, cohort.coords["condition"])
        processes = [condition.factor_processes(member.coords["a"]) for member in cohort.members]
        source = HMMSource(
            processes=processes,
            seeds=seeds,
            batch_size=batch_size,
            n_ctx=config["hmm"]["context"],
            last_only=[member.coords["loss"] == "last" for member in cohort.members],
        )
        return source, "xent"
    if cohort.family == "readoff":
        return ReadoffSource(seeds=seeds, batch_size=batch_size, n_ctx=config["readoff"]["length"]), "xent"
    settings = config["regression"]
    return RegressionSource(seeds=seeds, batch_size=batch_size, d=settings["dim"], n_context=settings["n_context"]), "mse"


def train_config(config: dict, family: str) -> TrainConfig:
    settings = config["training"][family]
    return TrainConfig(
        steps=settings["steps"],
        batch_size=settings["batch_size"],
        lr=settings["lr"],
        warmup_steps=settings["warmup_steps"],
        weight_decay=settings["weight_decay"],
        log_every=settings["log_every"],
        checkpoint_every=settings["checkpoint_every"],
        device=config["device"],
    )


def train_cohort(
    config: dict,
    cohort: Cohort,
    model_paths: list[str],
    record_paths: list[str],
    checkpoint_path: str | os.PathLike | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a cohort as one ensemble and write each member's ``model.pt`` and ``training.json``."""
    cfg = model_config(config, cohort)
    settings = train_config(config, cohort.family)
    source, loss = batch_source(config, cohort, settings.batch_size)
    model = EnsembleTransformer.from_seeds(cfg, [init_seed(cohort.family, m.coords["seed"]) for m in cohort.members])
    names = [member.path for member in cohort.members]
    result = train_ensemble(
        model, source, settings, loss, model_names=names, progress=progress, checkpoint_path=checkpoint_path
    )
    model = model.cpu()
    for index, (member, model_path, record_path) in enumerate(zip(cohort.members, model_paths, record_paths)):
        single = EnsembleTransformer.from_members(cfg, [model.member_state_dict(index)])
        save_ensemble(model_path, single, [member.path])
        record = {
            "model": member.path,
            "coords": to_jsonable(member.coords),
            "model_config": asdict(cfg),
            "train_config": asdict(settings),
            "loss": loss,
            "log_steps": result.log_steps.tolist(),
            "losses": result.losses[index].tolist(),
            "final_loss": float(result.losses[index, -1]),
            **provenance_attrs(config, family=cohort.family, model=member.path, seed=member.coords["seed"]),
        }
        write_json_atomic(record_path, record)
    if checkpoint_path is not None:
        Path(checkpoint_path).unlink(missing_ok=True)
    return result


def write_json_atomic(path: str | os.PathLike, document: dict) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.partial")
    staging.write_text(json.dumps(document, indent=1))
    os.replace(staging, target)


def load_cohort_models(config: dict, cohort: Cohort, model_paths: list[str], device: torch.device) -> EnsembleTransformer:
    """Restack a cohort's per-model files into one ensemble, checking each against the config's shape."""
    cfg: ModelConfig = model_config(config, cohort)
    states = [load_ensemble(path, cfg, n_members=1)[0].member_state_dict(0) for path in model_paths]
    return EnsembleTransformer.from_members(cfg, states).to(device).eval()
