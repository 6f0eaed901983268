"""Snakemake job: evaluation tasks of in-context linear regression with GD and least-squares references."""

from headshare.datasets import regression_dataset
from headshare.joblog import job_log
from headshare.store import write_store

with job_log(snakemake):
    write_store(regression_dataset(snakemake.config), snakemake.output[0])
