"""Paths and target lists shared by every stage; all derive from the validated config."""

import json
from pathlib import Path

from headshare.cohorts import (
    COHORT_TEMPLATES,
    FAMILIES,
    cohorts,
    find_cohort,
    member_grid,
    MEMBER_TEMPLATES,
)
from headshare.config import hmm_conditions
from headshare.figures import FIGURE_CAPTIONS, FIGURE_SOURCES


def project_path(path):
    """A relative path from the config: the working directory's file if there is one, else the project's."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return str(candidate)
    return str(Path(workflow.basedir) / candidate)


RESULTS = config["results"]
# Training and extraction jobs: with "auto" each takes every core Snakemake was given, so they run one at
# a time (the scripts cap torch's threads at the machine's cores). A cluster executor has no --cores (each
# job is its own allocation): there "auto" is --max-threads (profiles/slurm sets it, and Snakemake hands it
# on to the jobs, which cap their threads at it), or 1 without it.
HEAVY_THREADS = (
    config["threads"]
    if config["threads"] != "auto"
    else workflow.resource_settings.cores or workflow.resource_settings.max_threads or 1
)
PREDICTIONS = project_path(config["predictions"])
CONDITION_IDS = [condition.id for condition in hmm_conditions(config)]
EMISSION_FIDELITIES = [str(a) for a in config["hmm"]["emission_fidelity"]]


wildcard_constraints:
    condition="|".join(re.escape(c) for c in CONDITION_IDS),
    a="|".join(re.escape(a) for a in EMISSION_FIDELITIES),
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
    return [
        MEMBER_TEMPLATES[family].format(**own) for own in member_grid(config, family)
    ]


def model_file(member_path, name):
    """A file in a model's folder under results/models/ (name: "model.pt" or "training.json")."""
    return f"{RESULTS}/models/{member_path}/{name}"


def model_store(member_path):
    """A model's own evidence store under results/extract/."""
    return f"{RESULTS}/extract/{member_path}.zarr"


def cohort_members(family):
    """Member paths of one cohort, with the cohort's grid values left as Snakemake wildcards."""
    return [f"{COHORT_TEMPLATES[family]}/{member}" for member in member_names(family)]


def all_members(family):
    return [
        member.path for cohort in cohorts(config, family) for member in cohort.members
    ]


def extract_data_inputs(family):
    if family == "hmm":
        return [hmm_data_path("{condition}", a) for a in EMISSION_FIDELITIES]
    return [f"{RESULTS}/data/{family}.zarr"]


def figure_stems():
    """Every figure this config supports (the a sweep figure needs at least two emission fidelities)."""
    return [
        stem
        for stem in FIGURE_CAPTIONS
        if stem != "attention_decay_by_a" or len(EMISSION_FIDELITIES) > 1
    ]


def figure_targets():
    return [
        f"{RESULTS}/figures/{stem}.{ext}"
        for stem in figure_stems()
        for ext in ("png", "pdf")
    ]


def example_model_store():
    """The per-model store whose belief geometry is drawn: the first condition's largest model, first member."""
    cohort = [
        c for c in cohorts(config, "hmm") if c.coords["condition"] == CONDITION_IDS[0]
    ][-1]
    return model_store(cohort.members[0].path)


def figure_input(wildcards):
    source = FIGURE_SOURCES[wildcards.figure]
    return example_model_store() if source == "model" else f"{RESULTS}/{source}.zarr"


def cohort_name(family, wildcards):
    return COHORT_TEMPLATES[family].format(**wildcards)


def cohort_params(family, wildcards):
    """Everything that defines a cohort's training, so changing any of it retrains that cohort only."""
    cohort = find_cohort(config, family, cohort_name(family, wildcards))
    settings = {key: value for key, value in config[family].items() if key != "grid"}
    if family == "hmm":
        settings["conditions"] = [
            c for c in config["hmm"]["conditions"] if c["id"] == wildcards.condition
        ]
    return canonical(
        {
            "cohort": cohort.name,
            "members": [member.coords for member in cohort.members],
            "model": config["model"],
            "training": config["training"][family],
            "task": settings,
        }
    )
