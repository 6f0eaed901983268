"""Stage 2: train each cohort (models of one shape) as one batched ensemble; one output folder per model."""


for family in FAMILIES:

    rule:
        name:
            f"train_{family}"
        output:
            models=cohort_outputs(family, "models", "/model.pt"),
            records=cohort_outputs(family, "models", "/training.json"),
        params:
            family=family,
            cohort=lambda wildcards, family=family: cohort_name(family, wildcards),
            definition=lambda wildcards, family=family: cohort_params(family, wildcards),
            checkpoint=lambda wildcards, family=family: f"{RESULTS}/checkpoints/{cohort_name(family, wildcards)}.pt",
        threads: HEAVY_THREADS
        resources:
            runtime=120,
            mem_mb=4000,
        log:
            f"{RESULTS}/logs/train/{COHORT_TEMPLATES[family]}.log",
        conda:
            "../../envs/headshare.yaml"
        script:
            "../scripts/train.py"
