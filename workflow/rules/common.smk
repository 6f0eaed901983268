"""Paths and target lists shared by every stage; all derive from the validated config through the task
registry (headshare.tasks), so no rule file names a task."""

import json
import re
from pathlib import Path

from headshare import layout, tasks
from snakemake.resources import Resources

from headshare.grouping import training_groups
from headshare.provenance import to_jsonable


def project_path(path):
    """A relative path from the config: the working directory's file if there is one, else the project's."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return str(candidate)
    return str(Path(workflow.basedir) / candidate)


RESULTS = config["results"]
# Training and extraction jobs: with "auto" each runs on one thread, so --cores N runs N of them side by
# side. These models are too small for threads to pay: two one-thread trainers side by side did 1.2-1.3x
# the work of one two-thread trainer (python benchmarks/train.py's pipeline shape, 2 cores), and a job's
# serial parts (start-up, sampling, evaluation) overlap with other jobs' arithmetic instead of idling cores.
# A number is each such job's threads (the scripts cap it at the machine's cores, and a cluster executor at
# --max-threads).
HEAVY_THREADS = config["threads"] if config["threads"] != "auto" else 1
PREDICTIONS = project_path(config["predictions"])
TASKS = tasks.active(config)
GROUPING = config["grouping"]
TRAIN_GPUS = (
    0 if config["device"] == "cpu" else 1
)  # counted against --resources gpu=N, if given
SETTINGS = {task.name: task.settings(config) for task in TASKS}


def canonical(value):
    """Params as canonical JSON, so a config's key order never looks like a change and triggers a rerun."""
    return json.dumps(to_jsonable(value), sort_keys=True)


def store_contract(contract):
    """A store contract's variables and dims as a param: when a new version of the code measures something
    else, the stores it wrote are out of date and their jobs rerun (Snakemake reruns on changed params).
    """
    return canonical({name: list(var.dims) for name, var in contract.variables.items()})


def constraints(task, axes):
    """Wildcard constraints: each grid axis matches exactly the values this config gives it."""
    grid = SETTINGS[task.name].grid
    return {
        axis: "|".join(re.escape(str(value)) for value in grid[axis]) for axis in axes
    }


def cohorts(task_name):
    return tasks.get(task_name).cohorts(SETTINGS[task_name])


def dataset_store(name):
    return layout.dataset_store(RESULTS, name)


def dataset_targets():
    return [
        dataset_store(task.dataset_name(key))
        for task in TASKS
        for key in task.dataset_keys(SETTINGS[task.name])
    ]


def model_file(member_path, name):
    return layout.model_file(RESULTS, member_path, name)


def model_store(member_path):
    return layout.model_store(RESULTS, member_path)


def combined_store(task_name):
    return layout.combined_store(RESULTS, task_name)


def cohort_members(task):
    """Member paths of one cohort, with the cohort's grid values left as Snakemake wildcards."""
    return [
        f"{task.cohort_template}/{member.name}"
        for member in task.cohorts(SETTINGS[task.name])[0].members
    ]


def all_members(task):
    return [member.path for cohort in cohorts(task.name) for member in cohort.members]


def cohort_name(task, wildcards):
    return task.cohort_template.format(**wildcards)


def cohort_datasets(task, wildcards):
    """The evaluation datasets a cohort's members are judged on, in Cohort.dataset_names order."""
    cohort = task.find_cohort(SETTINGS[task.name], cohort_name(task, wildcards))
    return [dataset_store(name) for name in task.cohort_dataset_names(cohort)]


def cohort_params(task, names):
    """Everything that defines the training of cohorts ``names`` (one job's), so that changing any of it
    retrains those cohorts only."""
    settings = SETTINGS[task.name]
    cohorts = [task.find_cohort(settings, name) for name in names]
    members = [member for cohort in cohorts for member in cohort.members]
    datasets = {task.dataset_name(m.coords): m.coords for m in members}
    return canonical(
        {
            "cohorts": names,
            "members": [member.coords for member in members],
            "model": settings.model,
            "training": settings.training,
            "task": [
                task.dataset_parameters(settings, key) for key in datasets.values()
            ],
        }
    )


def inherit_resources(rule_name, from_rule):
    """Give ``rule_name`` whatever the profile or command line sets for ``from_rule`` (set-resources), as
    Snakemake does for the one so named. A cluster profile then names one training job kind per task, not
    one per family."""
    chosen = workflow.resource_settings.overwrite_resources.get(from_rule)
    if chosen:
        workflow.get_rule(rule_name).resources.update(Resources.from_mapping(chosen))
