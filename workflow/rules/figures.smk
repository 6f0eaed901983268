"""Stage 4: seaborn figures from the combined stores (PNG and PDF), captioned for `snakemake --report`."""

from headshare.figures import FIGURE_CAPTIONS


def figure_targets():
    return [f"{RESULTS}/figures/{stem}.{ext}" for stem in FIGURE_CAPTIONS for ext in ("png", "pdf")]


rule figure:
    input:
        hmm=f"{RESULTS}/hmm.zarr",
        readoff=f"{RESULTS}/readoff.zarr",
        regression=f"{RESULTS}/regression.zarr",
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
