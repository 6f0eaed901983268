"""Snakemake job: render every file of one declared figure (PNG and PDF) from the stores it reads."""

from headshare import tasks
from headshare.figures import task_figures
from headshare.figures.render import figures_folder, render
from headshare.joblog import job_log
from headshare.store import open_store

with job_log(snakemake):
    task, settings = tasks.configured(snakemake.config, snakemake.params.task)
    spec = next(spec for spec in task_figures(task) if spec.name == snakemake.params.figure)
    stores = [open_store(path) for path in snakemake.input]
    outdir = figures_folder(spec.pages(settings.grid, settings.blocks)[0], snakemake.output[0])
    written = render(spec, settings.grid, stores, outdir, blocks=settings.blocks)
    print(f"{spec.name}: wrote {len(written)} files under {outdir}")
