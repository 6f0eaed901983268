"""Combining per-model stores: models that stopped at different steps still line up on one grid."""

from __future__ import annotations

import numpy as np

from headshare import tasks
from headshare.combine import combine_members

from helpers.configs import smoke_config


def record(steps: list[int], final: float) -> dict:
    return {
        "final_loss": final, "steps_trained": steps[-1], "converged": True, "plateau": final, "plateau_se": 0.01,
        "convergence_fall": 0.0, "eval_steps": steps,
        "evaluations": {"metric": [final + 1.0 / s for s in steps], "metric_se": [0.01] * len(steps),
                        "accuracy": [0.5] * len(steps)},
    }


def test_models_that_stopped_at_different_steps_share_the_union_of_evaluation_steps():
    task, settings = tasks.configured(smoke_config(), "readoff")
    cohort = task.cohorts(settings)[0]
    members = list(cohort.members)
    coords = {"layer": [0], "head": [0, 1], "signal": np.arange(4), "rank": np.arange(4), "key_pos": np.arange(6),
              "sample": np.arange(3)}
    stores = [task.model_store.template(coords).assign(accuracy=float(index)) for index in range(len(members))]
    records = [record([10, 20, 30], 0.2), record([10, 20], 0.3)][: len(members)]
    combined = combine_members(task, members, stores, records, {})
    task.combined_store.check(combined, "combined")
    assert combined["eval_step"].values.tolist() == [10, 20, 30]
    second = combined["eval_metric"].sel(seed=members[1].coords["seed"]).squeeze()
    assert np.isnan(second.sel(eval_step=30)) and second.sel(eval_step=20) == 0.3 + 1 / 20
    assert combined["steps_trained"].sel(seed=members[1].coords["seed"]).item() == 20


def test_a_curve_the_training_record_lacks_is_nan_not_a_reason_to_retrain():
    task, settings = tasks.configured(smoke_config(), "readoff")
    members = list(task.cohorts(settings)[0].members)
    coords = {"layer": [0], "head": [0, 1], "signal": np.arange(4), "rank": np.arange(4), "key_pos": np.arange(6),
              "sample": np.arange(3)}
    stores = [task.model_store.template(coords) for _ in members]
    records = [record([10, 20], 0.2) for _ in members]
    del records[0]["evaluations"]["accuracy"]  # trained by a version whose evaluator did not record it
    combined = combine_members(task, members, stores, records, {})
    task.combined_store.check(combined, "combined")
    first, second = (combined["eval_accuracy"].sel(seed=m.coords["seed"]).squeeze() for m in members[:2])
    assert np.isnan(first).all() and (second == 0.5).all()
