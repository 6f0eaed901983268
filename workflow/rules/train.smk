"""Stage 2: train each cohort (models of one shape) as one batched ensemble; one output folder per model."""

for family in FAMILIES:

    rule:
        name:
            f"train_{family}"
        output:
            models=[model_file(member, "model.pt") for member in cohort_members(family)],
            records=[
                model_file(member, "training.json")
                for member in cohort_members(family)
            ],
        log:
            f"{RESULTS}/logs/train/{COHORT_TEMPLATES[family]}.log",
        conda:
            "../../envs/headshare.yaml"
        threads: HEAVY_THREADS
        resources:
            runtime=120,
            mem_mb=4000,
        params:
            family=family,
            cohort=lambda wildcards, family=family: cohort_name(family, wildcards),
            definition=lambda wildcards, family=family: cohort_params(family, wildcards),
            checkpoint=lambda wildcards, family=family: f"{RESULTS}/checkpoints/{cohort_name(family, wildcards)}.pt",
        script:
            "../scripts/train.py"
