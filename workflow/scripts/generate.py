"""Snakemake job: one evaluation dataset of a task, with its exact references."""

from headshare import tasks
from headshare.allocator import keep_freed_memory
from headshare.joblog import job_log
from headshare.store import write_store

keep_freed_memory()
with job_log(snakemake):
    task, settings = tasks.configured(snakemake.config, snakemake.params.task)
    key = task.dataset_key(settings, snakemake.params.dataset)
    print(f"generating the {task.name} dataset {snakemake.params.dataset}")
    write_store(task.build_dataset(settings, key), snakemake.output[0])
