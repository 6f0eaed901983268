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
    input:
        data_targets(),
    default_target: True
