"""The task registry: stages reach tasks only through it, a new task needs only its folder and config, store
contracts hold for the real stores, and each model's evidence depends on its own coordinates only."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from helpers.configs import deep_merge, smoke_config
from helpers.paths import PROJECT_ROOT, SMOKE_CONFIG
from helpers.pipeline import run_snakemake

from headshare import layout, tasks
from headshare.cohort_training import train_cohorts
from headshare.store import open_store
from headshare.training import resolve_device

TOY_TASKS = Path(__file__).resolve().parent / "toy_tasks"
TASK_FOLDERS = PROJECT_ROOT / "src" / "headshare" / "tasks"
MARKOV = {
    "task_packages": ["markov_task"],
    "markov": {"n_states": 3, "stay": 0.8, "context": 6, "eval_sequences": 300, "grid": {"n_heads": [1], "d_head": [4], "seeds": [0, 1]}},
    "training": {"markov": {"max_steps": 20, "batch_size": 32, "lr": 1.0e-3, "warmup_steps": 2, "log_every": 10,
                            "eval_every": 10, "eval_sequences": 100}},
}


def source_files() -> list[Path]:
    return [
        *(PROJECT_ROOT / "src").rglob("*.py"),
        *(PROJECT_ROOT / "workflow").rglob("*.smk"),
        *(PROJECT_ROOT / "workflow" / "scripts").glob("*.py"),
        PROJECT_ROOT / "Snakefile",
    ]


def test_no_stage_outside_the_task_folders_names_a_task():
    names = [task.name for task in tasks.all_tasks()]
    literal = re.compile(r"""(family\s*(==|!=|in)\s)|["'](%s)["']""" % "|".join(map(re.escape, names)))
    offenders = [
        f"{path.relative_to(PROJECT_ROOT)}:{number}: {line.strip()}"
        for path in source_files()
        if TASK_FOLDERS not in path.parents
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if literal.search(line)
    ]
    assert offenders == []


def test_parsing_the_workflow_imports_neither_torch_nor_plotting(tmp_path: Path):
    """A dry run stays fast: the rule files may import the registry, never torch or the plotting stack."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "snakemake", "--snakefile", str(PROJECT_ROOT / "Snakefile"),
         "--directory", str(tmp_path), "--configfile", str(SMOKE_CONFIG), "--cores", "1", "--dry-run", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert {"torch", "seaborn", "matplotlib"} & imported == set()


def test_every_task_declares_consistent_templates_and_contracts():
    config = smoke_config()
    for task in tasks.active(config):
        settings = task.settings(config)
        assert set(settings.grid) == set(task.grid_axes)
        for template, axes in ((task.cohort_template, task.cohort_axes), (task.member_template, task.member_axes),
                               (task.dataset_template, task.dataset_axes)):
            assert set(re.findall(r"{(\w+)}", template)) == set(axes), template
        names = [member.path for cohort in task.cohorts(settings) for member in cohort.members]
        assert len(set(names)) == len(names)
        for name, variable in task.combined_store.variables.items():
            if name in task.model_store.variables:
                assert variable.dims[: len(task.grid_axes)] == task.grid_axes, name


@pytest.mark.slow
def test_real_stores_follow_their_contracts(smoke_pipeline: Path):
    config = smoke_config()
    results = smoke_pipeline / "results"
    for task in tasks.active(config):
        combined = open_store(layout.combined_store(str(results), task.name))
        task.combined_store.check(combined, task.name)
        assert set(combined.data_vars) == set(task.combined_store.variables)
        for cohort in task.cohorts(task.settings(config)):
            for member in cohort.members:
                store = open_store(layout.model_store(str(results), member.path))
                task.model_store.check(store, member.path)
                assert set(store.data_vars) == set(task.model_store.variables)


@pytest.mark.slow
def test_two_layer_models_report_every_layer(smoke_pipeline: Path):
    readoff = xr.open_zarr(smoke_pipeline / "results" / "readoff.zarr")
    two = readoff["signal_preference"].sel(n_layers=2)
    one = readoff["signal_preference"].sel(n_layers=1)
    assert np.isfinite(two.values).all()
    assert np.isfinite(one.sel(layer=0).values).all() and np.isnan(one.sel(layer=1).values).all()


@pytest.mark.slow
def test_a_task_outside_the_package_runs_through_the_smoke_pipeline(tmp_path: Path):
    """The toy Markov-chain task is only a folder (tests/toy_tasks/markov_task) and a config section."""
    override = tmp_path / "markov.yaml"
    override.write_text(yaml.safe_dump(MARKOV))
    run_snakemake(tmp_path, "--configfile", str(SMOKE_CONFIG), str(override), env={"PYTHONPATH": str(TOY_TASKS)})
    store = xr.open_zarr(tmp_path / "results" / "markov.zarr")
    assert dict(store["loss"].sizes) == {"n_layers": 1, "n_heads": 1, "d_head": 1, "seed": 2}
    # no model beats the exact entropy rate by more than the evaluation noise
    assert float(store["excess_loss"].min()) > -0.05
    assert (tmp_path / "results" / "scores.md").exists()


def extracted_hmm_member(workdir: Path, seeds: list[int], member_name: str) -> xr.Dataset:
    """Train the first hmm cohort of the smoke config with ``seeds`` and extract it; one member's store."""
    config = deep_merge(smoke_config(), {"hmm": {"grid": {"seeds": seeds}}, "device": "cpu"})
    task, settings = tasks.configured(config, "hmm")
    cohort = task.cohorts(settings)[0]
    models = [layout.model_file(str(workdir), m.path, "model.pt") for m in cohort.members]
    train_cohorts(task, settings, [cohort], models, [f"{m}.json" for m in models], progress=False)
    datasets = {
        task.dataset_name(m.coords): task.build_dataset(settings, task.dataset_key(settings, task.dataset_name(m.coords)))
        for m in cohort.members
    }
    from headshare.cohort_training import load_cohort_models

    model = load_cohort_models(task, settings, cohort, models, resolve_device("cpu"))
    stores = task.extract(settings, cohort, model, [datasets[task.dataset_name(m.coords)] for m in cohort.members],
                          resolve_device("cpu"))
    (index,) = [i for i, m in enumerate(cohort.members) if m.name == member_name]
    return stores[index]


def test_adding_a_seed_leaves_existing_models_evidence_unchanged(tmp_path: Path):
    member = "seed~1"  # first alone, second among two: a cohort-wide generator would differ here
    alone = extracted_hmm_member(tmp_path / "one", [1], member)
    among = extracted_hmm_member(tmp_path / "two", [0, 1], member)
    # equal to float32 rounding (an ensemble of one and of two batch their matmuls differently)
    xr.testing.assert_allclose(alone, among, rtol=1e-5, atol=1e-6)
    # the belief split is the model's own: R^2 agrees far beyond what a different held-out set would give
    np.testing.assert_allclose(alone["belief_r2"], among["belief_r2"], rtol=1e-6)
