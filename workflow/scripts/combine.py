"""Snakemake job: one dense store per family from the per-model stores (see headshare.combine)."""

from headshare.cohorts import cohorts
from headshare.combine import add_hmm_references, chunk_for_slices, combine_members, training_record
from headshare.joblog import job_log
from headshare.provenance import provenance_attrs
from headshare.store import open_store, write_store

with job_log(snakemake):
    family, config = snakemake.params.family, snakemake.config
    members = [member for cohort in cohorts(config, family) for member in cohort.members]
    stores = [open_store(path) for path in snakemake.input.stores]
    records = [training_record(path) for path in snakemake.input.records]
    attrs = provenance_attrs(config, family=family)
    if family == "hmm":
        combined = combine_members(family, members, stores, records, attrs)
        hmm_data = [open_store(path, load=False) for path in snakemake.input.data]
        by_point = {(data.attrs["condition"], data.attrs["emission_fidelity"]): data for data in hmm_data}
        combined = add_hmm_references(combined, config, by_point)
    else:
        references = open_store(snakemake.input.data[0], load=False).attrs
        attrs.update({key: value for key, value in references.items() if key not in attrs})
        combined = combine_members(family, members, stores, records, attrs)
    print(f"combined {len(members)} {family} models: {dict(combined.sizes)}")
    write_store(chunk_for_slices(combined, family), snakemake.output[0])
