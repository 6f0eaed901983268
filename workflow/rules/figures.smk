"""Stage 4: every declared figure of the active tasks, one job per figure writing all its files (PNG and PDF).

A figure's files are known at parse time from its declaration and the grid: one file per value of each
axis it splits on (headshare.figures.spec).
"""

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


def figure_report(spec, page):
    """A PNG as the report shows it: under Figures, one subcategory per figure, labelled by its fixed values."""
    labels = {"figure": spec.name}
    labels.update({axis: format_value(value) for axis, value in page.fixed.items()})
    return report(
        f"{RESULTS}/figures/{page.stem}.png",
        caption="../report/figure.rst",
        category="Figures",
        subcategory=spec.name,
        labels=labels,
    )


for figure_spec in FIGURES:

    rule:
        name:
            f"figure_{figure_spec.name}"
        input:
            figure_sources(figure_spec),
        output:
            [figure_report(figure_spec, page) for page in figure_pages(figure_spec)],
            figure_files(figure_spec.name, ("pdf",)),
        log:
            f"{RESULTS}/logs/figures/{figure_spec.name}.log",
        conda:
            "../../envs/headshare.yaml"
        params:
            task=figure_spec.task,
            figure=figure_spec.name,
            caption=figure_spec.caption,
        script:
            "../scripts/figure.py"
