"""Shared pieces of every task's extraction: evaluation in chunks, raw-sample sizes, hook names, layout.

Each task's extractor (headshare/tasks/<task>/extract.py) runs a cohort's ensemble on the evaluation data
of each member and returns one xarray Dataset per member: summary variables, combined across the grid by
headshare.combine, and small samples of raw activations for users' own analyses.
"""

from __future__ import annotations

from collections.abc import Iterator

SAMPLE_SEQUENCES = 256  # raw activations kept per model for users' own analyses
CHUNK = 2000  # sequences per forward pass: memory stays flat for any evaluation-set size


def chunks(n: int, size: int = CHUNK) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` covering range(n)."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def attention_hooks(n_layers: int, *sites: str) -> list[str]:
    """Hook names of attention ``sites`` (e.g. "hook_pattern") in every layer, layer-major."""
    return [f"blocks.{layer}.attn.{site}" for site in sites for layer in range(n_layers)]


def final_residual_hook(n_layers: int) -> str:
    return f"blocks.{n_layers - 1}.hook_resid_post"
