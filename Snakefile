"""headshare: when and how attention heads share information.

Four stages (data -> train -> extract -> figures) and the scoring of pre-registered predictions.
`snakemake --cores 8` regenerates every artifact of config.yaml; see README.md.
"""

import sys

from headshare.config import ConfigError, validate_config
from headshare.predictions import load_predictions


configfile: "config.yaml"


try:
    validate_config(config)
except ConfigError as error:
    sys.exit(f"headshare: invalid configuration: {error}")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


try:
    load_predictions(PREDICTIONS)
except (ConfigError, OSError) as error:
    sys.exit(f"headshare: invalid predictions file: {error}")


include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/score.smk"


rule all:
    default_target: True
    input:
        f"{RESULTS}/scores.md",
        figure_targets(),


rule data:
    input:
        dataset_targets(),


rule train:
    input:
        [
            model_file(member, "model.pt")
            for task in TASKS
            for member in all_members(task)
        ],


rule extract:
    input:
        [combined_store(task.name) for task in TASKS],
