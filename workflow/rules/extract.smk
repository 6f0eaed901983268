"""Stage 3: evidence from every trained model into one zarr store per model, then one store per family."""


def extract_data_inputs(family):
    if family == "hmm":
        return [hmm_data_path("{condition}", a) for a in EMISSION_FIDELITIES]
    return [f"{RESULTS}/data/{family}.zarr"]


for family in FAMILIES:

    rule:
        name:
            f"extract_{family}"
        input:
            models=cohort_outputs(family, "models", "/model.pt"),
            data=extract_data_inputs(family),
        output:
            [directory(path) for path in cohort_outputs(family, "extract", ".zarr")],
        params:
            family=family,
            cohort=lambda wildcards, family=family: cohort_name(family, wildcards),
        threads: HEAVY_THREADS
        resources:
            runtime=60,
            mem_mb=6000,
        log:
            f"{RESULTS}/logs/extract/{COHORT_TEMPLATES[family]}.log",
        conda:
            "../../envs/headshare.yaml"
        script:
            "../scripts/extract.py"

    rule:
        name:
            f"combine_{family}"
        input:
            stores=all_member_paths(family, "extract", ".zarr"),
            records=all_member_paths(family, "models", "/training.json"),
            data=hmm_data_targets() if family == "hmm" else extract_data_inputs(family),
        output:
            directory(f"{RESULTS}/{family}.zarr"),
        params:
            family=family,
        log:
            f"{RESULTS}/logs/combine/{family}.log",
        conda:
            "../../envs/headshare.yaml"
        script:
            "../scripts/combine.py"
