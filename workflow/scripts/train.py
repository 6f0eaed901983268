"""Snakemake job: train one cohort as a batched ensemble (resuming from its checkpoint after a kill)."""

import os

import torch

from headshare import tasks
from headshare.cohort_training import train_cohort
from headshare.joblog import job_log

with job_log(snakemake):
    torch.set_num_threads(min(snakemake.threads, os.cpu_count() or 1))
    task, settings = tasks.configured(snakemake.config, snakemake.params.task)
    cohort = task.find_cohort(settings, snakemake.params.cohort)
    print(f"training {len(cohort.members)} models of {cohort.name}")
    train_cohort(
        task,
        settings,
        cohort,
        list(snakemake.output.models),
        list(snakemake.output.records),
        checkpoint_path=snakemake.params.checkpoint,
    )
