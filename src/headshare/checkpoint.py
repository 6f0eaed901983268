"""Saving and loading model ensembles and training state.

Files are written atomically (temporary file, then ``os.replace``) so a killed job never
leaves a half-written checkpoint behind, and read with ``torch.load(weights_only=True)``, which
refuses to run code from the file. Every file carries its ``ModelConfig`` as a plain dict; a
load checks it, and every parameter's shape, against the config the caller expects.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from headshare.model import EnsembleTransformer, ModelConfig

ENSEMBLE_FORMAT = "headshare.ensemble/1"


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model it is being loaded into."""


def save_atomic(payload: Mapping[str, Any], path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, flushed to disk, then renamed over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        torch.save(dict(payload), f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_payload(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by ``save_atomic`` (tensors and plain Python values only)."""
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises several types for corrupt or unsafe files
        raise CheckpointMismatchError(f"cannot read checkpoint {path}: {error}") from error
    if not isinstance(payload, dict):
        raise CheckpointMismatchError(f"checkpoint {path} holds a {type(payload).__name__}, not a mapping of fields")
    return payload


def check_model_state(
    path: str | os.PathLike,
    expected: ModelConfig,
    found_config: Mapping[str, Any],
    state: Mapping[str, Tensor],
    n_members: int | None = None,
) -> None:
    """Raise ``CheckpointMismatchError`` unless ``state`` (from file ``path``, saved with
    ``found_config``) is an ensemble of ``expected`` models, with ``n_members`` members if given."""
    expected_config = asdict(expected)
    differing = {
        key: (expected_config.get(key), found_config.get(key))
        for key in set(expected_config) | set(found_config)
        if expected_config.get(key) != found_config.get(key)
    }
    if differing:
        details = ", ".join(f"{k}: expected {e!r}, found {f!r}" for k, (e, f) in sorted(differing.items()))
        raise CheckpointMismatchError(f"checkpoint {path} has a different model config ({details})")
    if n_members is None:
        n_members = next(iter(state.values())).shape[0] if state else 1
    expected_shapes = {
        k: tuple(v.shape) for k, v in EnsembleTransformer(expected, n_members).state_dict().items()
    }
    found_shapes = {k: tuple(v.shape) for k, v in state.items()}
    if expected_shapes != found_shapes:
        problems = [
            f"{name}: expected {expected_shapes.get(name, 'absent')}, found {found_shapes.get(name, 'absent')}"
            for name in sorted(set(expected_shapes) | set(found_shapes))
            if expected_shapes.get(name) != found_shapes.get(name)
        ]
        raise CheckpointMismatchError(
            f"checkpoint {path} does not match {expected} with {n_members} members: " + "; ".join(problems)
        )


def save_ensemble(path: str | os.PathLike, model: EnsembleTransformer, model_names: Sequence[str]) -> None:
    """Write the ensemble's weights, its config and one name per member."""
    if len(model_names) != model.n_members:
        raise ValueError(f"need one name per member ({model.n_members}), got {len(model_names)}")
    save_atomic(
        {
            "format": ENSEMBLE_FORMAT,
            "model_config": asdict(model.cfg),
            "model_names": list(model_names),
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        },
        path,
    )


def load_ensemble(
    path: str | os.PathLike,
    expected: ModelConfig,
    *,
    n_members: int | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[EnsembleTransformer, list[str]]:
    """Read a file written by ``save_ensemble``; returns the ensemble and its member names."""
    payload = load_payload(path, map_location=map_location)
    if payload.get("format") != ENSEMBLE_FORMAT:
        raise CheckpointMismatchError(
            f"checkpoint {path} has format {payload.get('format')!r}, expected {ENSEMBLE_FORMAT!r}"
        )
    names = list(payload["model_names"])
    if n_members is not None and n_members != len(names):
        raise CheckpointMismatchError(f"checkpoint {path} holds {len(names)} members, expected {n_members}")
    check_model_state(path, expected, payload["model_config"], payload["model"], len(names))
    model = EnsembleTransformer(expected, len(names))
    model.load_state_dict(payload["model"])
    return model.to(map_location), names
