"""Snakemake job: evidence from every model of one cohort, one zarr store per model."""

import os

import torch

from headshare import tasks
from headshare.allocator import keep_freed_memory
from headshare.cohort_training import load_cohort_models
from headshare.joblog import job_log
from headshare.provenance import provenance_attrs
from headshare.store import open_store, write_store
from headshare.training import resolve_device

keep_freed_memory()
with job_log(snakemake):
    torch.set_num_threads(min(snakemake.threads, os.cpu_count() or 1))
    task, settings = tasks.configured(snakemake.config, snakemake.params.task)
    cohort = task.find_cohort(settings, snakemake.params.cohort)
    device = resolve_device(settings.device)
    model = load_cohort_models(task, settings, cohort, list(snakemake.input.models), device)
    opened = dict(zip(task.cohort_dataset_names(cohort), map(open_store, snakemake.input.data)))
    datasets = [opened[task.dataset_name(member.coords)] for member in cohort.members]
    stores = task.extract(settings, cohort, model, datasets, device)
    for member, store, path in zip(cohort.members, stores, snakemake.output):
        task.model_store.check(store, f"the evidence of {member.path}")
        store.attrs.update(provenance_attrs(settings.config, task=task.name, model=member.path, **member.coords))
        write_store(store, path)
    print(f"extracted {len(stores)} models of {cohort.name}")
