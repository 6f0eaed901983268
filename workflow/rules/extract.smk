"""Stage 3: evidence from every trained model into one zarr store per model, then one store per family."""

for family in FAMILIES:

    rule:
        name:
            f"extract_{family}"
        input:
            models=[model_file(member, "model.pt") for member in cohort_members(family)],
            data=extract_data_inputs(family),
        output:
            [directory(model_store(member)) for member in cohort_members(family)],
        log:
            f"{RESULTS}/logs/extract/{COHORT_TEMPLATES[family]}.log",
        conda:
            "../../envs/headshare.yaml"
        threads: HEAVY_THREADS
        resources:
            runtime=60,
            mem_mb=6000,
        params:
            family=family,
            cohort=lambda wildcards, family=family: cohort_name(family, wildcards),
        script:
            "../scripts/extract.py"

    rule:
        name:
            f"combine_{family}"
        input:
            stores=[model_store(member) for member in all_members(family)],
            records=[
                model_file(member, "training.json") for member in all_members(family)
            ],
            data=hmm_data_targets() if family == "hmm" else extract_data_inputs(family),
        output:
            directory(f"{RESULTS}/{family}.zarr"),
        log:
            f"{RESULTS}/logs/combine/{family}.log",
        conda:
            "../../envs/headshare.yaml"
        params:
            family=family,
        script:
            "../scripts/combine.py"
