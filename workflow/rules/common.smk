"""Paths and target lists shared by every stage; all derive from the validated config."""

import json

from headshare.config import hmm_conditions

RESULTS = config["results"]
CONDITION_IDS = [condition.id for condition in hmm_conditions(config)]
EMISSION_FIDELITIES = [str(a) for a in config["hmm"]["emission_fidelity"]]


wildcard_constraints:
    condition="|".join(re.escape(c) for c in CONDITION_IDS),
    a="|".join(re.escape(a) for a in EMISSION_FIDELITIES),


def canonical(value):
    """Params as canonical JSON, so a config's key order never looks like a change and triggers a rerun."""
    return json.dumps(value, sort_keys=True)


def hmm_data_path(condition="{condition}", a="{a}"):
    return f"{RESULTS}/data/hmm/{condition}/a~{a}.zarr"


def data_targets():
    return [hmm_data_path(c, a) for c in CONDITION_IDS for a in EMISSION_FIDELITIES] + [
        f"{RESULTS}/data/readoff.zarr",
        f"{RESULTS}/data/regression.zarr",
    ]
