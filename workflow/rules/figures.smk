"""Stage 4: seaborn figures from the combined stores (PNG and PDF), captioned for `snakemake --report`."""

from headshare.figures import FIGURE_CAPTIONS, FIGURE_SOURCES


def figure_stems():
    """Every figure this config supports (the a sweep figure needs at least two emission fidelities)."""
    return [stem for stem in FIGURE_CAPTIONS if stem != "attention_decay_by_a" or len(EMISSION_FIDELITIES) > 1]


def figure_targets():
    return [f"{RESULTS}/figures/{stem}.{ext}" for stem in figure_stems() for ext in ("png", "pdf")]


def example_model_store():
    """The per-model store whose belief geometry is drawn: the first condition's largest model, seed 0."""
    cohort = [c for c in cohorts(config, "hmm") if c.coords["condition"] == CONDITION_IDS[0]][-1]
    return f"{RESULTS}/extract/{cohort.members[0].path}.zarr"


def figure_input(wildcards):
    source = FIGURE_SOURCES[wildcards.figure]
    return example_model_store() if source == "model" else f"{RESULTS}/{source}.zarr"


rule figure:
    input:
        figure_input,
    output:
        png=report(
            f"{RESULTS}/figures/{{figure}}.png",
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{figure}"},
        ),
        pdf=f"{RESULTS}/figures/{{figure}}.pdf",
    params:
        caption=lambda wildcards: FIGURE_CAPTIONS[wildcards.figure],
    wildcard_constraints:
        figure="|".join(FIGURE_CAPTIONS),
    log:
        f"{RESULTS}/logs/figures/{{figure}}.log",
    conda:
        "../../envs/headshare.yaml"
    script:
        "../scripts/figure.py"
