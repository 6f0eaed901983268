"""Stage 2: train cohorts as batched ensembles; one output folder per model.

With `grouping: cohort` one rule per task trains any cohort (its grid values are wildcards). With
`grouping: family` each family of cohorts (models that differ at most in n_heads) is one job of its own
rule, train_<task>_family<i>, which takes the cluster resources given to train_<task>. Every training job
claims one `gpu` unless the config's device is cpu: `--resources gpu=1` runs one at a time on one GPU.
"""

for task in TASKS:
    if GROUPING == "cohort":

        rule:
            name:
                f"train_{task.name}"
            output:
                models=[
                    model_file(member, "model.pt") for member in cohort_members(task)
                ],
                records=[
                    model_file(member, "training.json")
                    for member in cohort_members(task)
                ],
            log:
                f"{RESULTS}/logs/train/{task.cohort_template}.log",
            wildcard_constraints:
                **constraints(task, task.cohort_axes),
            conda:
                "../../envs/headshare.yaml"
            threads: HEAVY_THREADS
            resources:
                runtime=120,
                mem_mb=4000,
                gpu=TRAIN_GPUS,
            params:
                task=task.name,
                cohorts=lambda wildcards, task=task: [cohort_name(task, wildcards)],
                definition=lambda wildcards, task=task: cohort_params(
                    task, [cohort_name(task, wildcards)]
                ),
                checkpoint=lambda wildcards, task=task: layout.checkpoint(
                    RESULTS, cohort_name(task, wildcards)
                ),
            script:
                "../scripts/train.py"

    else:
        for index, group in enumerate(
            training_groups(task, SETTINGS[task.name], GROUPING)
        ):
            members = [member.path for member in group.members]

            rule:
                name:
                    f"train_{task.name}_family{index}"
                output:
                    models=[model_file(member, "model.pt") for member in members],
                    records=[model_file(member, "training.json") for member in members],
                log:
                    f"{RESULTS}/logs/train/{group.name}.log",
                conda:
                    "../../envs/headshare.yaml"
                threads: HEAVY_THREADS
                resources:
                    runtime=120,
                    mem_mb=4000,
                    gpu=TRAIN_GPUS,
                params:
                    task=task.name,
                    cohorts=[cohort.name for cohort in group.cohorts],
                    definition=cohort_params(task, [c.name for c in group.cohorts]),
                    checkpoint=layout.checkpoint(RESULTS, group.name),
                script:
                    "../scripts/train.py"

            inherit_resources(f"train_{task.name}_family{index}", f"train_{task.name}")
