"""Snakemake job: render one figure (PNG and PDF) from the store it reads."""

from pathlib import Path

from headshare.figures import draw
from headshare.joblog import job_log
from headshare.store import open_store

with job_log(snakemake):
    stem = Path(snakemake.output.png).with_suffix("")
    draw(snakemake.wildcards.figure, open_store(snakemake.input[0]), stem)
    print(f"wrote {stem}.png and {stem}.pdf")
