"""Stage 4: every declared figure of the active tasks, one job per task writing all its figures' files (PNG
and PDF, and each figure's report caption): a job's start-up (Python, plotting imports) costs more than
most figures, so it is paid once per task.

A figure's files are known at parse time from its declaration and the grid: one file per value of each
axis it splits on (headshare.figures.spec).
"""

from pathlib import Path

from headshare.figures import figures_of, format_value
from headshare.grid import same_value

FIGURES = figures_of(TASKS)
FIGURE_FORMATS = ("png", "pdf")


def figure_pages(spec):
    return spec.pages(SETTINGS[spec.task].grid, SETTINGS[spec.task].blocks)


def figure_files(name, formats=FIGURE_FORMATS):
    """The files of one figure (all its pages, in each format)."""
    spec = next(spec for spec in FIGURES if spec.name == name)
    return [
        f"{RESULTS}/figures/{page.stem}.{fmt}"
        for fmt in formats
        for page in figure_pages(spec)
    ]


def figure_targets():
    """Every file of every figure of the active tasks."""
    return [path for spec in FIGURES for path in figure_files(spec.name)]


def page_model(spec, page):
    """The member drawn on a per-model figure's page: the one at the page's fixed values."""
    for cohort in cohorts(spec.task):
        for member in cohort.members:
            if all(
                same_value(member.coords[axis], value)
                for axis, value in page.fixed.items()
            ):
                return member.path
    raise ValueError(f"figure {spec.name}: no {spec.task} model at {page.fixed}")


def figure_sources(spec):
    """The stores a figure reads: its task's combined store, or one model store per page."""
    if spec.source == "combined":
        return [combined_store(spec.task)]
    return [model_store(page_model(spec, page)) for page in figure_pages(spec)]


def caption_file(spec):
    """The report caption of a figure, written by its task's figure job (absolute, as the report reads it
    from the working directory)."""
    return str(Path(f"{RESULTS}/figures/captions/{spec.name}.rst").resolve())


def figure_report(spec, page):
    """A PNG as the report shows it: under Figures, one subcategory per figure, labelled by its fixed values."""
    labels = {"figure": spec.name}
    labels.update({axis: format_value(value) for axis, value in page.fixed.items()})
    return report(
        f"{RESULTS}/figures/{page.stem}.png",
        caption=caption_file(spec),
        category="Figures",
        subcategory=spec.name,
        labels=labels,
    )


for task in TASKS:
    task_specs = [spec for spec in FIGURES if spec.task == task.name]
    if not task_specs:
        continue

    rule:
        name:
            f"figures_{task.name}"
        input:
            list(
                dict.fromkeys(
                    path for spec in task_specs for path in figure_sources(spec)
                )
            ),
        output:
            [
                figure_report(spec, page)
                for spec in task_specs
                for page in figure_pages(spec)
            ],
            [path for spec in task_specs for path in figure_files(spec.name, ("pdf",))],
            captions=[caption_file(spec) for spec in task_specs],
        log:
            f"{RESULTS}/logs/figures/{task.name}.log",
        conda:
            "../../envs/headshare.yaml"
        params:
            task=task.name,
            sources={spec.name: figure_sources(spec) for spec in task_specs},
        script:
            "../scripts/figure.py"
