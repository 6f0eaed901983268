"""Snakemake job: evidence from every model of one cohort, one zarr store per model."""

import os

import numpy as np
import torch

from headshare.cohort_training import load_cohort_models
from headshare.cohorts import find_cohort
from headshare.extraction import extract_hmm, extract_readoff, extract_regression
from headshare.joblog import job_log
from headshare.provenance import provenance_attrs
from headshare.seeding import derived_rng
from headshare.store import open_store, write_store
from headshare.training import resolve_device

with job_log(snakemake):
    torch.set_num_threads(min(snakemake.threads, os.cpu_count() or 1))
    config, family = snakemake.config, snakemake.params.family
    cohort = find_cohort(config, family, snakemake.params.cohort)
    device = resolve_device(config["device"])
    model = load_cohort_models(config, cohort, list(snakemake.input.models), device)
    if family == "hmm":
        by_a = {data.attrs["emission_fidelity"]: data for data in map(open_store, snakemake.input.data)}
        datasets = [by_a[member.coords["a"]] for member in cohort.members]
        last_only = [member.coords["loss"] == "last" for member in cohort.members]
        stores = extract_hmm(model, datasets, last_only, derived_rng(0, "belief-split", cohort.name), device)
    elif family == "readoff":
        stores = extract_readoff(model, open_store(snakemake.input.data[0]), device)
    else:
        stores = extract_regression(model, open_store(snakemake.input.data[0]), device)
    for member, store, path in zip(cohort.members, stores, snakemake.output):
        store.attrs.update(provenance_attrs(config, family=family, model=member.path, **member.coords))
        write_store(store, path)
    print(f"extracted {len(stores)} models of {cohort.name}")
