"""Stage 4: seaborn figures from the combined stores (PNG and PDF), captioned for `snakemake --report`."""


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
    log:
        f"{RESULTS}/logs/figures/{{figure}}.log",
    wildcard_constraints:
        figure="|".join(FIGURE_CAPTIONS),
    conda:
        "../../envs/headshare.yaml"
    params:
        caption=lambda wildcards: FIGURE_CAPTIONS[wildcards.figure],
    script:
        "../scripts/figure.py"
