"""Paths and target lists shared by every stage; all derive from the validated config."""

import json
from pathlib import Path

from headshare.cohorts import COHORT_TEMPLATES, FAMILIES, cohorts, find_cohort, member_grid, MEMBER_TEMPLATES
from headshare.config import hmm_conditions

def project_path(path):
    """A relative path from the config: the working directory's file if there is one, else the project's."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return str(candidate)
    return str(Path(workflow.basedir) / candidate)


RESULTS = config["results"]
# Training and extraction jobs: with "auto" each takes every core Snakemake was given, so they run one at
# a time (the scripts cap torch's threads at the machine's cores).
HEAVY_THREADS = workflow.cores if config["threads"] == "auto" else config["threads"]
PREDICTIONS = project_path(config["predictions"])
CONDITION_IDS = [condition.id for condition in hmm_conditions(config)]
EMISSION_FIDELITIES = [str(a) for a in config["hmm"]["emission_fidelity"]]


wildcard_constraints:
    condition="|".join(re.escape(c) for c in CONDITION_IDS),
    a="|".join(re.escape(a) for a in EMISSION_FIDELITIES),
    loss="all|last",
    attention="linear|softmax",
    n_heads=r"\d+",
    d_head=r"\d+",


def canonical(value):
    """Params as canonical JSON, so a config's key order never looks like a change and triggers a rerun."""
    return json.dumps(value, sort_keys=True)


def hmm_data_path(condition="{condition}", a="{a}"):
    return f"{RESULTS}/data/hmm/{condition}/a~{a}.zarr"


def hmm_data_targets():
    return [hmm_data_path(c, a) for c in CONDITION_IDS for a in EMISSION_FIDELITIES]


def data_targets():
    return hmm_data_targets() + [
        f"{RESULTS}/data/readoff.zarr",
        f"{RESULTS}/data/regression.zarr",
    ]


def member_names(family):
    return [MEMBER_TEMPLATES[family].format(**own) for own in member_grid(config, family)]


def cohort_outputs(family, stage, filename):
    """Per-member paths of one cohort, with the cohort's grid values left as Snakemake wildcards."""
    return [f"{RESULTS}/{stage}/{COHORT_TEMPLATES[family]}/{member}{filename}" for member in member_names(family)]


def all_member_paths(family, stage, filename):
    return [
        f"{RESULTS}/{stage}/{member.path}{filename}"
        for cohort in cohorts(config, family)
        for member in cohort.members
    ]


def cohort_name(family, wildcards):
    return COHORT_TEMPLATES[family].format(**wildcards)


def cohort_params(family, wildcards):
    """Everything that defines a cohort's training, so changing any of it retrains that cohort only."""
    cohort = find_cohort(config, family, cohort_name(family, wildcards))
    settings = {key: value for key, value in config[family].items() if key != "grid"}
    if family == "hmm":
        settings["conditions"] = [c for c in config["hmm"]["conditions"] if c["id"] == wildcards.condition]
    return canonical(
        {
            "cohort": cohort.name,
            "members": [member.coords for member in cohort.members],
            "model": config["model"],
            "training": config["training"][family],
            "task": settings,
        }
    )
