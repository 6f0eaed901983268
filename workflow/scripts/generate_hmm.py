"""Snakemake job: evaluation dataset of one product-HMM condition at one emission fidelity."""

from headshare.datasets import hmm_dataset
from headshare.joblog import job_log
from headshare.store import write_store

with job_log(snakemake):
    condition, a = snakemake.wildcards.condition, float(snakemake.wildcards.a)
    print(f"generating {condition} at a={a}")
    write_store(hmm_dataset(snakemake.config, condition, a), snakemake.output[0])
