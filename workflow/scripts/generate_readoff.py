"""Snakemake job: evaluation dataset of the readoff task."""

from headshare.datasets import readoff_dataset
from headshare.joblog import job_log
from headshare.store import write_store

with job_log(snakemake):
    write_store(readoff_dataset(snakemake.config), snakemake.output[0])
