"""The task interface: what every task family (hmm, readoff, regression, ...) declares to the pipeline.

A task owns its process or sampler, dataset builder, exact references, model shape, batch source,
extractor and combine step. The stages (cohorts, training, extraction, combine, figures, scoring) reach a
task only through this interface and the registry (:mod:`headshare.tasks`), so adding a task is one new
folder: a subclass of :class:`Task`, a ``schema.yaml`` for its config section, and its config.

Import cost matters: the Snakefile imports every task to build its rules, so a task's module must not
import torch, seaborn or matplotlib at import time (import them inside the methods that need them).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import yaml

if TYPE_CHECKING:
    import torch
    import xarray as xr

    from headshare.model import EnsembleTransformer, ModelConfig
    from headshare.training import BatchSource, Evaluator, TrainConfig

# Axes that every task's grid has, and that are cohort axes (they fix the tensor shapes).
MODEL_AXES = ("n_layers", "n_heads", "d_head")
SEED_AXIS = "seed"


@dataclass(frozen=True)
class ModelSettings:
    """The config's ``model`` section: shape settings shared by every task's transformers."""

    d_model: int
    layernorm: bool
    mlp: bool


@dataclass(frozen=True)
class TaskSettings:
    """A task's config section turned into typed values once; nothing below the task layer reads the dict.

    ``blocks`` are the grids the config asks for, each a full product (axis -> values): the main grid and any
    sub-grids a task adds for particular conditions (a task's ``extra_grids``). ``grid`` maps every grid axis
    (cohort axes, then member axes) to the union of its values over the blocks, in config order: the
    coordinates of the combined store, where a point that no block holds stays NaN.
    ``provenance`` is the whole validated config as canonical JSON, recorded in artifacts' metadata.
    Tasks subclass this to add their own fields.
    """

    task: str
    grid: dict[str, tuple[Any, ...]]
    blocks: tuple[dict[str, tuple[Any, ...]], ...]
    model: ModelSettings
    training: dict[str, Any]
    device: str
    provenance: str = field(repr=False)

    @property
    def config(self) -> dict:
        """The validated config this run was started with (for provenance records only)."""
        return json.loads(self.provenance)

    def train_config(self) -> TrainConfig:
        """The trainer's settings (the convergence batch's size is the task evaluator's, not the trainer's)."""
        from headshare.training import TrainConfig

        trainer = {key: value for key, value in self.training.items() if key != "eval_sequences"}
        return TrainConfig(**trainer, device=self.device)


@dataclass(frozen=True)
class Member:
    """One model: its cohort's coordinates plus its own (its member axes)."""

    task: str
    cohort: str
    name: str
    coords: dict[str, Any] = field(hash=False)

    @property
    def path(self) -> str:
        return f"{self.cohort}/{self.name}"


@dataclass(frozen=True)
class Cohort:
    """Models of one shape that train together as one batched ensemble."""

    task: str
    name: str
    coords: dict[str, Any] = field(hash=False)
    members: tuple[Member, ...]


@dataclass(frozen=True)
class Variable:
    """One variable of a store contract: its dims, and what it means."""

    dims: tuple[str, ...]
    description: str = ""


# What every model's training record adds to the combined store (see headshare.analysis.convergence).
TRAINING_RECORD = {
    "final_train_loss": Variable((), "mean training loss over the last logging window"),
    "steps_trained": Variable((), "steps the model trained (it stops once it converged, whatever its cohort does)"),
    "converged": Variable((), "1 if the model passed the convergence test, else 0"),
    "plateau": Variable((), "the convergence metric's mean over the last quarter of the evaluations"),
    "plateau_se": Variable((), "the evaluations' standard error over that window (root mean square)"),
    "convergence_fall": Variable((), "one-sided 95% upper bound of the metric's fall over another doubling"),
    "eval_metric": Variable(("eval_step",), "the convergence metric on the held-out batch during training"),
    "eval_metric_se": Variable(("eval_step",), "its standard error over the held-out sequences"),
}

# Dims of raw activation samples: kept in the per-model stores, never combined across the grid.
SAMPLE_DIMS = frozenset({"sample", "simplex_point", "task", "query_pos", "key_pos", "d_model"})


@dataclass(frozen=True)
class StoreContract:
    """The variables (name -> dims) a store must hold. Tests check real stores against it, and the
    synthetic stores that tests of readers use are built from it, so neither can drift."""

    variables: dict[str, Variable]

    def dims(self, name: str) -> tuple[str, ...]:
        return self.variables[name].dims

    def summary(self) -> dict[str, Variable]:
        """The variables comparable across the grid: those without raw-sample dims."""
        return {name: var for name, var in self.variables.items() if not SAMPLE_DIMS & set(var.dims)}

    def combined(
        self,
        grid_axes: tuple[str, ...],
        references: dict[str, Variable] | None = None,
        evaluations: dict[str, Variable] | None = None,
    ) -> StoreContract:
        """The contract of the combined store: every summary variable and the training record (convergence
        evidence, and the task evaluator's further curves ``evaluations``, named eval_<output>) with the grid
        axes in front, then the task's references."""
        per_model = {**self.summary(), **TRAINING_RECORD, **(evaluations or {})}
        variables = {name: Variable((*grid_axes, *var.dims), var.description) for name, var in per_model.items()}
        return StoreContract({**variables, **(references or {})})

    def template(self, coords: dict[str, Any]) -> xr.Dataset:
        """A store with every variable of the contract, all NaN, shaped by ``coords`` (dim -> values):
        what synthetic test stores start from, so that they hold exactly the contract's variables."""
        import numpy as np
        import xarray as xr

        missing = sorted({dim for var in self.variables.values() for dim in var.dims} - set(coords))
        if missing:
            raise ValueError(f"template needs coordinates for dims {missing}")
        sizes = {dim: len(values) for dim, values in coords.items()}
        variables = {
            name: (var.dims, np.full([sizes[dim] for dim in var.dims], np.nan)) for name, var in self.variables.items()
        }
        used = {dim for var in self.variables.values() for dim in var.dims}
        return xr.Dataset(variables, coords={dim: values for dim, values in coords.items() if dim in used})

    def check(self, store: xr.Dataset, where: str) -> None:
        """Raise ``ArtifactError`` naming ``where`` if a variable is missing or has other dims."""
        from headshare.store import ArtifactError

        for name, variable in self.variables.items():
            if name not in store.variables:
                raise ArtifactError(f"{where} lacks variable {name!r} (dims {variable.dims})")
            if tuple(store[name].dims) != variable.dims:
                raise ArtifactError(f"{where}: {name!r} has dims {tuple(store[name].dims)}, expected {variable.dims}")


class Task:
    """Base class of a task family. Subclasses set the class attributes and implement the methods.

    Path templates use the grid axes as ``str.format`` fields:
    ``cohort_template`` (cohort axes), ``member_template`` (member axes) and ``dataset_template``
    (``dataset_axes``, a subset of the grid axes that picks a member's evaluation dataset).
    """

    name: ClassVar[str]
    cohort_axes: ClassVar[tuple[str, ...]]
    # A cohort's members differ in their seed alone, so every cohort of a task has the same members and one
    # rule per stage serves them all, however sparse the grid's blocks; adding a seed never changes the
    # shape of other cohorts.
    member_axes: ClassVar[tuple[str, ...]] = (SEED_AXIS,)
    dataset_axes: ClassVar[tuple[str, ...]] = ()
    cohort_template: ClassVar[str]
    member_template: ClassVar[str]
    dataset_template: ClassVar[str]
    chunk_axes: ClassVar[tuple[str, ...]] = ()  # combined-store axes chunked one value per chunk
    schema_file: ClassVar[Path]  # JSON schema (YAML) of the task's config section

    # --------------------------------------------------------------------------------- config
    @property
    def grid_axes(self) -> tuple[str, ...]:
        return (*self.cohort_axes, *self.member_axes)

    def schema(self) -> dict:
        return yaml.safe_load(self.schema_file.read_text())

    def validate(self, config: dict) -> None:
        """Checks of the task's section beyond its schema; raise ``ConfigError`` with one line."""

    def settings(self, config: dict) -> TaskSettings:
        """The task's typed settings from a validated config (the only place the dict is read)."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------ grid
    def cohorts(self, settings: TaskSettings) -> list[Cohort]:
        """Every cohort of the config's blocks, each once, in block order."""
        cohorts: dict[str, Cohort] = {}
        for block in settings.blocks:
            members = grid_points(block, self.member_axes)
            for shared in grid_points(block, self.cohort_axes):
                name = self.cohort_template.format(**shared)
                own = tuple(
                    Member(self.name, name, self.member_template.format(**m), {**shared, **m}) for m in members
                )
                cohorts.setdefault(name, Cohort(self.name, name, shared, own))
        return list(cohorts.values())

    def find_cohort(self, settings: TaskSettings, name: str) -> Cohort:
        for cohort in self.cohorts(settings):
            if cohort.name == name:
                return cohort
        raise ValueError(f"no {self.name} cohort named {name!r} in this config")

    def dataset_keys(self, settings: TaskSettings) -> list[dict[str, Any]]:
        """The evaluation datasets of this config, as values of ``dataset_axes``, each once."""
        keys = {self.dataset_name(key): key for block in settings.blocks for key in grid_points(block, self.dataset_axes)}
        return list(keys.values())

    def dataset_name(self, coords: dict[str, Any]) -> str:
        """The dataset path (relative to results/data/) of a member or a dataset key."""
        return self.dataset_template.format(**{axis: coords[axis] for axis in self.dataset_axes})

    def dataset_key(self, settings: TaskSettings, name: str) -> dict[str, Any]:
        """The dataset key whose path is ``name`` (grid values keep their types, unlike path text)."""
        for key in self.dataset_keys(settings):
            if self.dataset_name(key) == name:
                return key
        raise ValueError(f"no {self.name} dataset named {name!r} in this config")

    def cohort_dataset_names(self, cohort: Cohort) -> list[str]:
        """The evaluation datasets of a cohort's members, each once, in member order (the order in which
        the extraction rule lists them)."""
        return list(dict.fromkeys(self.dataset_name(member.coords) for member in cohort.members))

    # ------------------------------------------------------------------------------- datasets
    def dataset_parameters(self, settings: TaskSettings, key: dict[str, Any]) -> dict[str, Any]:
        """Everything the dataset at ``key`` depends on, so a change reruns that dataset only."""
        raise NotImplementedError

    def build_dataset(self, settings: TaskSettings, key: dict[str, Any]) -> xr.Dataset:
        raise NotImplementedError

    # ------------------------------------------------------------------------------- training
    def model_config(self, settings: TaskSettings, cohort: Cohort) -> ModelConfig:
        raise NotImplementedError

    def batch_source(
        self, settings: TaskSettings, members: Sequence[Member], seeds: list[int], batch_size: int
    ) -> tuple[BatchSource, str]:
        """The fresh-sample source of ``members`` (member i's stream seeded by ``seeds[i]``, its data set by
        its own coords: members of several cohorts may train together, headshare.grouping) and the loss
        ("xent" or "mse")."""
        raise NotImplementedError

    def evaluator(self, settings: TaskSettings, cohort: Cohort) -> Evaluator:
        """The cohort's convergence evaluator: a fixed held-out batch, drawn independently of training, and
        the metric (lower is better) with its standard error; see headshare.training.Evaluator."""
        raise NotImplementedError

    # ----------------------------------------------------------------------------- extraction
    def extract(
        self,
        settings: TaskSettings,
        cohort: Cohort,
        model: EnsembleTransformer,
        datasets: list[xr.Dataset],
        device: torch.device,
    ) -> list[xr.Dataset]:
        """One evidence store per member; ``datasets[i]`` is member i's evaluation dataset."""
        raise NotImplementedError

    model_store: ClassVar[StoreContract]  # per-model evidence store (results/extract/...)

    # -------------------------------------------------------------------------------- combine
    def add_references(
        self, settings: TaskSettings, combined: xr.Dataset, datasets: dict[tuple[Any, ...], xr.Dataset]
    ) -> xr.Dataset:
        """Exact references beside the models in the combined store. ``datasets`` maps each dataset key
        (its ``dataset_axes`` values, in order) to that evaluation dataset. By default the single dataset's
        attrs (its references, e.g. the GD loss) are copied over."""
        if len(datasets) == 1:
            (data,) = datasets.values()
            combined.attrs.update({k: v for k, v in data.attrs.items() if k not in combined.attrs})
        return combined

    combined_store: ClassVar[StoreContract]  # results/<task>.zarr (grid axes in front of summary dims)


def common_settings(config: dict, task: str) -> dict[str, Any]:
    """The TaskSettings fields every task reads the same way from a validated config."""
    from headshare.provenance import to_jsonable

    model = config["model"]
    return dict(
        task=task,
        model=ModelSettings(d_model=model["d_model"], layernorm=model["layernorm"], mlp=model["mlp"]),
        training=dict(config["training"][task]),
        device=config["device"],
        provenance=json.dumps(to_jsonable(config), sort_keys=True),
    )


def model_axes(grid: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """The model-shape axes of a config's ``grid`` section (n_layers, n_heads, d_head)."""
    return {axis: tuple(grid[axis]) for axis in MODEL_AXES}


def transformer_shape(settings: TaskSettings, cohort: Cohort) -> dict[str, Any]:
    """ModelConfig fields fixed by the config's model section and the cohort's shape axes."""
    return dict(
        d_model=settings.model.d_model,
        layernorm=settings.model.layernorm,
        mlp=settings.model.mlp,
        **{axis: cohort.coords[axis] for axis in MODEL_AXES},
    )


def grid_fields(*blocks: dict[str, tuple[Any, ...]]) -> dict[str, Any]:
    """The ``grid`` and ``blocks`` fields of a TaskSettings made of ``blocks`` (the main grid first)."""
    return {"grid": union_grid(blocks), "blocks": blocks}


def sub_grid(main: dict[str, tuple[Any, ...]], replaced: dict[str, tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    """A sub-grid of a task's ``extra_grids``: the main grid with the axes in ``replaced`` (axis -> values)
    swapped for the entry's values; the seeds stay the main grid's."""
    unknown = sorted(set(replaced) - set(main) | ({SEED_AXIS} & set(replaced)))
    if unknown:
        raise ValueError(f"an extra grid cannot replace {unknown}; it may replace {sorted(set(main) - {SEED_AXIS})}")
    return {**main, **replaced}


def union_grid(blocks: tuple[dict[str, tuple[Any, ...]], ...]) -> dict[str, tuple[Any, ...]]:
    """Every axis's values over all blocks, each once, in the order they first appear."""
    return {axis: tuple(dict.fromkeys(value for block in blocks for value in block[axis])) for axis in blocks[0]}


def grid_points(grid: dict[str, tuple[Any, ...]], axes: tuple[str, ...]) -> list[dict[str, Any]]:
    """Cartesian product of the named grid axes, in config order."""
    return [dict(zip(axes, values)) for values in itertools.product(*(grid[axis] for axis in axes))]
