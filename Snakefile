"""headshare: when and how attention heads share information.

Four stages (data -> train -> extract -> figures) and the scoring of pre-registered predictions.
`snakemake --cores 8` regenerates every artifact of config.yaml; see README.md.
"""

import sys

from headshare.config import ConfigError, validate_config


configfile: "config.yaml"


try:
    validate_config(config)
except ConfigError as error:
    sys.exit(f"headshare: invalid configuration: {error}")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"


rule all:
    default_target: True
    input:
        data_targets(),


rule data:
    input:
        data_targets(),
