"""Snakemake job: one dense store per task from the per-model stores (see headshare.combine)."""

from headshare import tasks
from headshare.combine import chunk_for_slices, combine_members, training_record
from headshare.joblog import job_log
from headshare.provenance import provenance_attrs
from headshare.store import open_store, write_store

with job_log(snakemake):
    task, settings = tasks.configured(snakemake.config, snakemake.params.task)
    members = [member for cohort in task.cohorts(settings) for member in cohort.members]
    stores = [open_store(path) for path in snakemake.input.stores]  # in member order, as the rule lists them
    records = [training_record(path) for path in snakemake.input.records]
    combined = combine_members(task, members, stores, records, provenance_attrs(settings.config, task=task.name))
    datasets = {
        tuple(key.values()): open_store(path, load=False)
        for key, path in zip(task.dataset_keys(settings), snakemake.input.data)
    }
    combined = task.add_references(settings, combined, datasets)
    task.combined_store.check(combined, f"the combined {task.name} store")
    print(f"combined {len(members)} {task.name} models: {dict(combined.sizes)}")
    write_store(chunk_for_slices(task, combined), snakemake.output[0])
