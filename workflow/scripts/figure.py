"""Snakemake job: render every file of every declared figure of one task (PNG and PDF) from the stores each
reads, and write each figure's report caption."""

from pathlib import Path

from headshare import tasks
from headshare.figures import task_figures
from headshare.figures.render import figures_folder, render
from headshare.joblog import job_log
from headshare.store import open_store

with job_log(snakemake):
    task, settings = tasks.configured(snakemake.config, snakemake.params.task)
    specs = task_figures(task)
    outdir = figures_folder(specs[0].pages(settings.grid, settings.blocks)[0], snakemake.output[0])
    opened = {}
    for spec in specs:
        stores = [opened.setdefault(path, open_store(path)) for path in snakemake.params.sources[spec.name]]
        written = render(spec, settings.grid, stores, outdir, blocks=settings.blocks)
        print(f"{spec.name}: wrote {len(written)} files under {outdir}", flush=True)
    for path in snakemake.output.captions:
        spec = next(spec for spec in specs if spec.name == Path(path).stem)
        # The report renders a caption as a Jinja template of reStructuredText.
        caption = spec.caption.replace("|", "\\|").replace("*", "\\*").replace("{", "{{ '{' }}")
        Path(path).write_text(caption + "\n")
