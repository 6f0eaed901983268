"""Stage 2: train each cohort (models of one shape) as one batched ensemble; one output folder per model."""

for task in TASKS:

    rule:
        name:
            f"train_{task.name}"
        output:
            models=[model_file(member, "model.pt") for member in cohort_members(task)],
            records=[
                model_file(member, "training.json") for member in cohort_members(task)
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
        params:
            task=task.name,
            cohort=lambda wildcards, task=task: cohort_name(task, wildcards),
            definition=lambda wildcards, task=task: cohort_params(task, wildcards),
            checkpoint=lambda wildcards, task=task: layout.checkpoint(
                RESULTS, cohort_name(task, wildcards)
            ),
        script:
            "../scripts/train.py"
