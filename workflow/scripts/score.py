"""Snakemake job: judge every pre-registered prediction against the combined store of each active task."""

from headshare.joblog import job_log
from headshare.predictions import load_predictions
from headshare.scoring import score, write_scores
from headshare.store import open_store

with job_log(snakemake):
    predictions = load_predictions(snakemake.input.predictions)
    stores = {task: open_store(path) for task, path in zip(snakemake.params.tasks, snakemake.input.stores, strict=True)}
    scores = score(predictions, stores)
    write_scores(scores, snakemake.output.csv, snakemake.output.md)
    print(scores["verdict"].value_counts().to_string())
