"""Stage 1: evaluation datasets with their exact references (product HMMs, readoff, regression)."""


rule generate_hmm:
    output:
        directory(hmm_data_path()),
    log:
        f"{RESULTS}/logs/data/hmm/{{condition}}/a~{{a}}.log",
    conda:
        "../../envs/headshare.yaml"
    params:
        condition=lambda wildcards: canonical(
            next(
                c
                for c in config["hmm"]["conditions"]
                if c["id"] == wildcards.condition
            )
        ),
        hmm=canonical(
            {
                key: config["hmm"][key]
                for key in ("context", "eval_sequences", "sensitivity_samples", "seed")
            }
        ),
    script:
        "../scripts/generate_hmm.py"


rule generate_readoff:
    output:
        directory(f"{RESULTS}/data/readoff.zarr"),
    log:
        f"{RESULTS}/logs/data/readoff.log",
    conda:
        "../../envs/headshare.yaml"
    params:
        readoff=canonical({k: v for k, v in config["readoff"].items() if k != "grid"}),
    script:
        "../scripts/generate_readoff.py"


rule generate_regression:
    output:
        directory(f"{RESULTS}/data/regression.zarr"),
    log:
        f"{RESULTS}/logs/data/regression.log",
    conda:
        "../../envs/headshare.yaml"
    params:
        regression=canonical(
            {k: v for k, v in config["regression"].items() if k != "grid"}
        ),
    script:
        "../scripts/generate_regression.py"
