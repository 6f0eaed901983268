"""Stage 1: evaluation datasets with their exact references, one rule per task."""

for task in TASKS:

    rule:
        name:
            f"generate_{task.name}"
        output:
            directory(dataset_store(task.dataset_template)),
        log:
            f"{RESULTS}/logs/data/{task.dataset_template}.log",
        wildcard_constraints:
            **constraints(task, task.dataset_axes),
        conda:
            "../../envs/headshare.yaml"
        params:
            task=task.name,
            dataset=lambda wildcards, task=task: task.dataset_template.format(
                **wildcards
            ),
            definition=lambda wildcards, task=task: canonical(
                task.dataset_parameters(
                    SETTINGS[task.name],
                    task.dataset_key(
                        SETTINGS[task.name], task.dataset_template.format(**wildcards)
                    ),
                )
            ),
        script:
            "../scripts/generate.py"
