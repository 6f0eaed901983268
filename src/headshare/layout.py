"""Where every artifact lives under the results folder: the one place the rule files and the job scripts
take paths from."""

from __future__ import annotations


def dataset_store(results: str, name: str) -> str:
    """An evaluation dataset (name: a task's dataset_template, filled in or with wildcards)."""
    return f"{results}/data/{name}.zarr"


def model_file(results: str, member_path: str, name: str) -> str:
    """A file in a model's folder (name: "model.pt" or "training.json")."""
    return f"{results}/models/{member_path}/{name}"


def model_store(results: str, member_path: str) -> str:
    """A model's own evidence store."""
    return f"{results}/extract/{member_path}.zarr"


def combined_store(results: str, task_name: str) -> str:
    """A task's dense grid store."""
    return f"{results}/{task_name}.zarr"


def checkpoint(results: str, cohort_name: str) -> str:
    """A cohort's training checkpoint (deleted once the cohort's models are written)."""
    return f"{results}/checkpoints/{cohort_name}.pt"
