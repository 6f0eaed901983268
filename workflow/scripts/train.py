"""Snakemake job: train one group of cohorts as a batched ensemble (resuming from its checkpoint after a kill)."""

import os

import torch

from headshare import tasks
from headshare.allocator import keep_freed_memory
from headshare.cohort_training import train_cohorts
from headshare.joblog import job_log

keep_freed_memory()
with job_log(snakemake):
    torch.set_num_threads(min(snakemake.threads, os.cpu_count() or 1))
    task, settings = tasks.configured(snakemake.config, snakemake.params.task)
    cohorts = [task.find_cohort(settings, name) for name in snakemake.params.cohorts]
    members = sum(len(cohort.members) for cohort in cohorts)
    print(f"training {members} models of {len(cohorts)} cohort(s): {', '.join(c.name for c in cohorts)}")
    train_cohorts(
        task,
        settings,
        cohorts,
        list(snakemake.output.models),
        list(snakemake.output.records),
        checkpoint_path=snakemake.params.checkpoint,
    )
