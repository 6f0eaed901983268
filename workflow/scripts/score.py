"""Snakemake job: judge every pre-registered prediction against the combined stores."""

from headshare.joblog import job_log
from headshare.predictions import load_predictions
from headshare.scoring import score, write_scores
from headshare.store import open_store

with job_log(snakemake):
    predictions = load_predictions(snakemake.input.predictions)
    stores = {family: open_store(snakemake.input[family]) for family in ("hmm", "readoff", "regression")}
    scores = score(predictions, **stores)
    write_scores(scores, snakemake.output.csv, snakemake.output.md)
    print(scores["verdict"].value_counts().to_string())
