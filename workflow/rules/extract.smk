"""Stage 3: evidence from every trained model into one zarr store per model, then one store per task."""

for task in TASKS:

    rule:
        name:
            f"extract_{task.name}"
        input:
            models=[model_file(member, "model.pt") for member in cohort_members(task)],
            data=lambda wildcards, task=task: cohort_datasets(task, wildcards),
        output:
            [directory(model_store(member)) for member in cohort_members(task)],
        log:
            f"{RESULTS}/logs/extract/{task.cohort_template}.log",
        wildcard_constraints:
            **constraints(task, task.cohort_axes),
        conda:
            "../../envs/headshare.yaml"
        threads: HEAVY_THREADS
        resources:
            runtime=60,
            mem_mb=6000,
        params:
            task=task.name,
            cohort=lambda wildcards, task=task: cohort_name(task, wildcards),
            contract=store_contract(task.model_store),
        script:
            "../scripts/extract.py"

    rule:
        name:
            f"combine_{task.name}"
        input:
            stores=[model_store(member) for member in all_members(task)],
            records=[
                model_file(member, "training.json") for member in all_members(task)
            ],
            data=[
                dataset_store(task.dataset_name(key))
                for key in task.dataset_keys(SETTINGS[task.name])
            ],
        output:
            directory(combined_store(task.name)),
        log:
            f"{RESULTS}/logs/combine/{task.name}.log",
        conda:
            "../../envs/headshare.yaml"
        params:
            task=task.name,
            contract=store_contract(task.combined_store),
        script:
            "../scripts/combine.py"
