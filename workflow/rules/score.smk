"""Scoring: pre-registered predictions judged against the combined stores, with no human in the loop."""


rule score:
    input:
        predictions=PREDICTIONS,
        stores=[combined_store(task.name) for task in TASKS],
    output:
        csv=f"{RESULTS}/scores.csv",
        md=report(
            f"{RESULTS}/scores.md", caption="../report/scores.rst", category="Scores"
        ),
    log:
        f"{RESULTS}/logs/score.log",
    conda:
        "../../envs/headshare.yaml"
    params:
        tasks=[task.name for task in TASKS],
    script:
        "../scripts/score.py"
