"""Scoring: pre-registered predictions judged against the combined stores, with no human in the loop."""


rule score:
    input:
        predictions=PREDICTIONS,
        hmm=f"{RESULTS}/hmm.zarr",
        readoff=f"{RESULTS}/readoff.zarr",
        regression=f"{RESULTS}/regression.zarr",
        figures=figure_targets(),
    output:
        csv=f"{RESULTS}/scores.csv",
        md=report(
            f"{RESULTS}/scores.md", caption="../report/scores.rst", category="Scores"
        ),
    log:
        f"{RESULTS}/logs/score.log",
    conda:
        "../../envs/headshare.yaml"
    script:
        "../scripts/score.py"
