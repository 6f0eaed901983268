"""Train cohorts of a task's grid and write one folder per model (weights + training record).

Glue between the task (its model shape and batch source) and the ensemble trainer (headshare.training): it
builds one ensemble of a cohort, or of a family of cohorts (headshare.grouping), trains it, then splits it
into per-model files so that every later stage (and every user) handles models one at a time. Each member
stops training on its own convergence test (headshare.training), and its record holds its own curves and stop
step only, so a model's files depend on its own coordinates, never on the other members of its ensemble.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from headshare.checkpoint import load_ensemble, save_ensemble
from headshare.grouping import family_config
from headshare.mixed_ensemble import GroupEvaluator, head_mask
from headshare.model import EnsembleTransformer, init_member_state, with_heads
from headshare.provenance import provenance_attrs, to_jsonable
from headshare.seeding import derived_seed
from headshare.tasks.base import Cohort, Task, TaskSettings
from headshare.training import TrainResult, train_ensemble


def init_seed(task: str, seed: int) -> int:
    """Initial weights depend on (task, seed) only: models of one shape and seed start identical across
    conditions and emission fidelities, so comparisons between conditions are paired."""
    return derived_seed(seed, "init", task)


def data_seed(member_coords: dict[str, Any], task: str) -> int:
    """Each model's training stream depends on its own coordinates only, never on its cohort's size.
    Depth is left out: models that differ only in n_layers see the same stream, a paired comparison."""
    labels = [member_coords[key] for key in sorted(member_coords) if key != "n_layers"]
    return derived_seed(member_coords["seed"], "train-data", task, *labels)


def train_cohorts(
    task: Task,
    settings: TaskSettings,
    cohorts: Sequence[Cohort],
    model_paths: list[str],
    record_paths: list[str],
    checkpoint_path: str | os.PathLike | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``cohorts`` as one ensemble (one cohort, or a family of cohorts differing in n_heads only: see
    headshare.grouping) and write each member's ``model.pt`` and ``training.json``, paths in member order.

    Each member starts from its own cohort's initial weights, draws its own stream and is evaluated by its own
    cohort's evaluator (one source draws for all: a task's source reads each member's coords); members of
    fewer heads than the widest train zero-padded and masked, and are saved at their own shape. A record's
    ``log_steps``/``losses`` are the member's own training-loss windows (ending at its stop, whose window may
    be partial) and ``final_loss`` the last of them."""
    configs = [task.model_config(settings, cohort) for cohort in cohorts]
    family = family_config(configs)
    members = [member for cohort in cohorts for member in cohort.members]
    member_configs = [cfg for cohort, cfg in zip(cohorts, configs) for _ in cohort.members]
    if not len(members) == len(model_paths) == len(record_paths):
        raise ValueError(f"need one model and one record path per member ({len(members)})")
    train_config = settings.train_config()
    seeds = [data_seed(member.coords, task.name) for member in members]
    source, loss = task.batch_source(settings, members, seeds, train_config.batch_size)
    model = EnsembleTransformer.from_members(
        family,
        [
            with_heads(init_member_state(cfg, init_seed(task.name, member.coords["seed"])), cfg, family.n_heads)
            for member, cfg in zip(members, member_configs)
        ],
    )
    if len(cohorts) == 1:
        evaluate = task.evaluator(settings, cohorts[0])
    else:
        evaluate = GroupEvaluator(
            [(cfg, len(cohort.members), task.evaluator(settings, cohort)) for cohort, cfg in zip(cohorts, configs)]
        )
    result = train_ensemble(
        model,
        source,
        train_config,
        loss,
        model_names=[member.path for member in members],
        evaluate=evaluate,
        progress=progress,
        checkpoint_path=checkpoint_path,
        head_mask=head_mask(member_configs, family),
    )
    model = model.cpu()
    for index, (member, cfg, model_path, record_path) in enumerate(
        zip(members, member_configs, model_paths, record_paths)
    ):
        own = with_heads(model.member_state_dict(index), family, cfg.n_heads)
        single = EnsembleTransformer.from_members(cfg, [own])
        save_ensemble(model_path, single, [member.path])
        log_steps, member_losses = result.member_losses(index)
        evidence = convergence_record(result, index)
        if isinstance(evaluate, GroupEvaluator):
            evidence["evaluations"] = {
                name: evaluate.own(model, index, name, np.asarray(values)).tolist()
                for name, values in evidence["evaluations"].items()
            }
        record = {
            "model": member.path,
            "coords": to_jsonable(member.coords),
            "model_config": asdict(cfg),
            "train_config": asdict(train_config),
            "loss": loss,
            "log_steps": log_steps.tolist(),
            "losses": member_losses.tolist(),
            "final_loss": float(member_losses[-1]) if len(member_losses) else float("nan"),
            **evidence,
            **provenance_attrs(settings.config, task=task.name, model=member.path, seed=member.coords["seed"]),
        }
        write_json_atomic(record_path, record)
    if checkpoint_path is not None:
        Path(checkpoint_path).unlink(missing_ok=True)
    return result


def convergence_record(result: TrainResult, index: int) -> dict[str, Any]:
    """Member ``index``'s evaluation curves up to its own stop, the steps it trained (its own stop step) and
    its convergence test on that curve, as training.json keeps them."""
    test = result.convergence[index] if result.convergence else None
    eval_steps, evaluations = result.member_evaluations(index)
    return {
        "steps_trained": int(result.member_steps[index]),
        "eval_steps": eval_steps.tolist(),
        "evaluations": {name: values.tolist() for name, values in evaluations.items()},
        "converged": bool(test.converged) if test else False,
        "plateau": test.plateau if test else float("nan"),
        "plateau_se": test.plateau_se if test else float("nan"),
        "convergence_fall": test.fall_per_doubling if test else float("nan"),
    }


def write_json_atomic(path: str | os.PathLike, document: dict) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.partial")
    staging.write_text(json.dumps(document, indent=1))
    os.replace(staging, target)


def load_cohort_models(
    task: Task, settings: TaskSettings, cohort: Cohort, model_paths: list[str], device: torch.device
) -> EnsembleTransformer:
    """Restack a cohort's per-model files into one ensemble, checking each against the config's shape."""
    cfg = task.model_config(settings, cohort)
    states = [load_ensemble(path, cfg, n_members=1)[0].member_state_dict(0) for path in model_paths]
    return EnsembleTransformer.from_members(cfg, states).to(device).eval()
