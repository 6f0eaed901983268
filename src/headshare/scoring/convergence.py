"""Convergence gating: a model that had not stopped learning neither confirms nor refutes a claim.

Every combined store records, per model, whether it passed the training's convergence test (``converged``)
and how many steps it trained (``steps_trained``), and the convergence metric at every evaluation during
training (``eval_metric``, NaN after a model stopped). The engine turns every seed whose models did not all
converge into the judgement "unconverged"; quantities that re-check their verdict over training take the
plateau - the last quarter of the evaluation steps all compared models share - from :func:`plateau_steps`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import xarray as xr

from headshare.scoring.quantity import Measured

CONVERGENCE_VARIABLES = ("converged", "steps_trained")
PLATEAU_FRACTION = 0.25  # the convergence window: the last quarter of the evaluations
FLIP_POWER = (
    "the verdict is not yet stable: needs longer training, until it holds over the whole plateau (raise max_steps)"
)


def converged_seeds(point: xr.Dataset) -> np.ndarray:
    """Per seed, whether every model of that seed at ``point`` converged (``converged`` == 1)."""
    converged = point["converged"]
    others = [dim for dim in converged.dims if dim != "seed"]
    return (converged == 1).all(others).transpose("seed").values


def plateau_steps(recording: np.ndarray) -> np.ndarray:
    """Indices of the plateau: the last quarter (at least one) of the evaluation steps at which every
    compared model is still recording; ``recording`` is a bool per evaluation step."""
    shared = np.flatnonzero(recording)
    return shared[len(shared) - math.ceil(PLATEAU_FRACTION * len(shared)) :]


def gate(measured: Measured, point: xr.Dataset) -> Measured:
    """``measured`` with every seed whose models did not all converge judged "unconverged" (a missing
    measurement stays missing), and the steps those models trained named in the reason."""
    converged = converged_seeds(point)
    if converged.all():
        return measured
    outcomes = [
        outcome if ok or outcome == "missing" else "unconverged" for outcome, ok in zip(measured.outcomes, converged, strict=True)
    ]
    steps = point["steps_trained"].where(point["converged"] != 1).max().item()
    trained = f"{steps:.0f} steps" if np.isfinite(steps) else "its training"
    return dataclasses.replace(
        measured,
        outcomes=outcomes,
        explain={**measured.explain, "unconverged": f"the convergence test failed within {trained}"},
        power={
            **measured.power,
            "unconverged": f"not converged in {trained}: needs longer training (raise max_steps)",
        },
    )
