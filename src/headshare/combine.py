"""Combine per-model evidence into one store per task: a dense grid with an index coord per axis.

Every grid axis of the task is a dimension with an index coordinate, so
``xr.open_zarr("results/hmm.zarr").sel(condition=..., n_heads=2)`` works on any axis. Models with fewer
heads (or layers) than the largest are padded with NaN along ``head`` (``layer``), and grid points that no
block of the config trains (a sparse ``extra_grids`` entry) are NaN, with ``steps_trained`` NaN there. Raw activation samples
stay in the per-model stores; only the contract's summary variables are combined.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import xarray as xr

from headshare.tasks.base import Member, Task

PADDED_DIMS = {"layer": "n_layers", "head": "n_heads"}  # dim -> the grid axis giving its size


def _summary(task: Task, store: xr.Dataset) -> xr.Dataset:
    summary = store[list(task.model_store.summary())]
    return summary.drop_vars([c for c in summary.coords if c not in summary.dims])


def _place_on_grid(task: Task, summary: xr.Dataset, member: Member, sizes: dict[str, int]) -> xr.Dataset:
    padding = {dim: np.arange(sizes[dim]) for dim in PADDED_DIMS if dim in summary.dims}
    if padding:
        summary = summary.reindex(padding)
    return summary.expand_dims({axis: [member.coords[axis]] for axis in task.grid_axes})


def training_variables(
    task: Task, record: dict, eval_steps: np.ndarray, sizes: dict[str, int]
) -> dict[str, xr.DataArray]:
    """A model's training record as store variables: its final loss, convergence test and evaluation curves
    (output ``name`` of the task's evaluator becomes ``eval_<name>``, with the dims of the contract), on the
    common ``eval_steps`` of the grid (NaN after the model stopped), so that models that stopped at different
    steps still line up. A curve the record lacks (a model trained before its evaluator recorded it) is NaN,
    shaped by ``sizes`` (the model's store), rather than a reason to train again."""
    scalars = {
        "final_train_loss": record["final_loss"],
        "steps_trained": record["steps_trained"],
        "converged": float(record["converged"]),
        "plateau": record["plateau"],
        "plateau_se": record["plateau_se"],
        "convergence_fall": record["convergence_fall"],
    }
    variables = {name: xr.DataArray(float(value)) for name, value in scalars.items()}
    grid = len(task.grid_axes)
    for name in (name for name in task.combined_store.variables if name.startswith("eval_")):
        dims = task.combined_store.dims(name)[grid:]
        values = record["evaluations"].get(name.removeprefix("eval_"))
        if values is None:
            variables[name] = xr.DataArray(np.full([len(eval_steps), *(sizes[d] for d in dims[1:])], np.nan),
                                           dims=dims, coords={"eval_step": eval_steps})
            continue
        curve = xr.DataArray(np.asarray(values, dtype=np.float64), dims=dims, coords={"eval_step": record["eval_steps"]})
        variables[name] = curve.reindex(eval_step=eval_steps)
    return variables


def combine_members(
    task: Task,
    members: Sequence[Member],
    stores: Sequence[xr.Dataset],
    training: Sequence[dict],
    attrs: dict,
) -> xr.Dataset:
    """One dense dataset of the task's grid from per-model stores and their training records."""
    sizes = {dim: max(int(m.coords[axis]) for m in members) for dim, axis in PADDED_DIMS.items()}
    eval_steps = np.unique(np.concatenate([np.asarray(record["eval_steps"], dtype=np.int64) for record in training]))
    pieces = []
    for member, store, record in zip(members, stores, training):
        summary = _summary(task, store)
        summary = summary.assign(training_variables(task, record, eval_steps, dict(summary.sizes)))
        pieces.append(_place_on_grid(task, summary, member, sizes))
    _check_aligned(task, pieces, members)
    combined = xr.merge(pieces, join="outer", compat="no_conflicts", combine_attrs="drop")
    for axis in task.grid_axes:
        if combined[axis].dtype.kind in "OUT":
            combined = combined.assign_coords({axis: combined[axis].values.astype(object)})
    combined = combined.transpose(*task.grid_axes, ...)
    combined.attrs.update(task=task.name, **attrs)
    return combined


def _check_aligned(task: Task, pieces: Sequence[xr.Dataset], members: Sequence[Member]) -> None:
    """Every model's store must share the non-grid coordinates (distances, positions, ...); the merge fills
    only grid points with NaN, never a coordinate one model has and another lacks."""
    from headshare.store import ArtifactError

    first = pieces[0]
    for piece, member in zip(pieces[1:], members[1:]):
        for dim, index in piece.indexes.items():
            reference = first.indexes.get(dim)
            if dim not in task.grid_axes and (reference is None or not index.equals(reference)):
                theirs = list(reference) if reference is not None else "no such coordinate"
                raise ArtifactError(
                    f"{member.path}: coordinate {dim!r} is {list(index)}, but {members[0].path} has "
                    f"{theirs}; every model of a task must share it"
                )


def chunk_for_slices(task: Task, combined: xr.Dataset) -> xr.Dataset:
    """Chunks hold one value of each of the task's chunk axes (e.g. one (condition, a, loss) block), so one
    model or one head across seeds is a single read."""
    for variable in combined.variables.values():
        variable.encoding["chunks"] = tuple(
            1 if dim in task.chunk_axes else size for dim, size in zip(variable.dims, variable.shape)
        ) or None
    return combined


def training_record(path: str) -> dict:
    with open(path) as handle:
        return json.load(handle)
