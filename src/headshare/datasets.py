"""Evaluation datasets of the three task families as xarray Datasets, with their exact references.

Training draws fresh samples every step (see headshare.training); these fixed, seeded datasets are what
every trained model is evaluated on, so that losses are paired across models and against the exact filter.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from headshare.config import condition_by_id
from headshare.data.hmm import sample_product
from headshare.data.readoff import CLASS_PAIRS, sample_readoff
from headshare.data.regression import (
    gd_prediction,
    least_squares_prediction,
    mean_squared_loss,
    optimal_gd_step,
    sample_regression,
    zero_loss,
)
from headshare.exact import (
    conditional_entropies,
    effective_decay,
    filter_log_loss,
    filter_sensitivity,
)
from headshare.provenance import provenance_attrs
from headshare.seeding import derived_rng

SEQUENCE_CONVENTION = (
    "sequences hold context+1 tokens drawn from the stationary distribution; the model reads tokens "
    "0..context-1 and predicts tokens 1..context, so the exact optimum at target position t (1-based "
    "index t+1) is H(X_(t+1) | X_<=t)"
)


def hmm_dataset(config: dict, condition_id: str, a: float) -> xr.Dataset:
    """Sequences of one product condition at emission fidelity ``a``, with every exact reference.

    Holds the joint and per-factor tokens, hidden states and filter beliefs; the exact optimal loss per
    position; the exact filter's log loss on these very sequences (for paired excess loss); and the filter's
    replacement sensitivity S(n) with its effective decay r_eff(n) = S(n+1)/S(n), per factor (exact) and for
    the product (Monte-Carlo).
    """
    hmm_config = config["hmm"]
    condition = condition_by_id(config, condition_id)
    p1, p2 = condition.factor_processes(a)
    joint = condition.process(a)
    context = hmm_config["context"]
    length = context + 1
    rng = derived_rng(hmm_config["seed"], "hmm-eval", condition.id, a)
    sample = sample_product(p1, p2, hmm_config["eval_sequences"], length, rng)

    factor_entropies = np.stack([conditional_entropies(p, length) for p in (p1, p2)])
    factor_sensitivity = np.stack([filter_sensitivity(p, context) for p in (p1, p2)])
    product_sensitivity = filter_sensitivity(
        joint, context, n_samples=hmm_config["sensitivity_samples"],
        rng=derived_rng(hmm_config["seed"], "hmm-sensitivity", condition.id, a),
    )
    factor_filter_loss = np.stack([filter_log_loss(p, s.tokens) for p, s in zip((p1, p2), sample.factors)])

    seq, pos, dist = "sequence", "position", "distance"
    data_vars = {
        "tokens": ((seq, pos), sample.tokens),
        "states": ((seq, pos), sample.states),
        "beliefs": ((seq, pos, "joint_state"), sample.beliefs),
        "factor_tokens": (("factor", seq, pos), np.stack([s.tokens for s in sample.factors])),
        "factor_states": (("factor", seq, pos), np.stack([s.states for s in sample.factors])),
        "optimal_loss": ((pos,), factor_entropies.sum(axis=0)),
        "factor_optimal_loss": (("factor", pos), factor_entropies),
        "filter_loss": ((seq, pos), factor_filter_loss.sum(axis=0)),
        "factor_filter_loss": (("factor", seq, pos), factor_filter_loss),
        "filter_sensitivity": ((dist,), product_sensitivity),
        "factor_filter_sensitivity": (("factor", dist), factor_sensitivity),
        "filter_decay": (("step",), effective_decay(product_sensitivity)),
        "factor_filter_decay": (("factor", "step"), np.stack([effective_decay(s) for s in factor_sensitivity])),
    }
    for index, (process, factor_sample) in enumerate(zip((p1, p2), sample.factors), start=1):
        data_vars[f"beliefs_{index}"] = ((seq, pos, f"state_{index}"), factor_sample.beliefs)
    dataset = xr.Dataset(
        data_vars,
        coords={
            pos: np.arange(length),
            dist: np.arange(context),
            "step": np.arange(1, context),
            "factor": [1, 2],
            "factor_kind": ("factor", np.array([f.kind for f in condition.factors], dtype=object)),
            "factor_lambda": ("factor", [f.lam for f in condition.factors]),
            "factor_n_tokens": ("factor", [p1.n_tokens, p2.n_tokens]),
        },
    )
    dataset["optimal_loss"].attrs["description"] = "H(X_t | X_<t) in nats at each position (t = position + 1)"
    dataset["filter_loss"].attrs["description"] = "exact Bayes filter's -log p of each token given the earlier ones"
    dataset["filter_sensitivity"].attrs["description"] = (
        "S(n): mean total variation of the filter's next-token prediction after `context` tokens when the token "
        "at distance n (0 = last) is resampled uniformly; r_eff(n) = S(n)/S(n-1) is filter_decay at step n"
    )
    predicted = dataset["optimal_loss"].isel(position=slice(1, None))
    dataset.attrs.update(
        condition=condition.id,
        role=condition.role,
        emission_fidelity=float(a),
        context=context,
        sequence_convention=SEQUENCE_CONVENTION,
        optimal_loss_mean=float(predicted.mean()),
        unigram_loss=float(factor_entropies[:, 0].sum()),
        context_gain=float(factor_entropies[:, 0].sum() - predicted.mean()),
        **provenance_attrs(config, family="hmm", condition=condition.id, a=a, seed=hmm_config["seed"]),
    )
    return dataset


def readoff_dataset(config: dict) -> xr.Dataset:
    """Evaluation sequences of the readoff task (SCIENCE.md §5) with labels and signal positions."""
    settings = config["readoff"]
    sample = sample_readoff(settings["eval_sequences"], settings["length"], derived_rng(settings["seed"], "readoff-eval"))
    pairs = np.array([f"{a}{b}" for a, b in CLASS_PAIRS], dtype=object)
    return xr.Dataset(
        {
            "tokens": (("sequence", "position"), sample.tokens),
            "labels": (("sequence",), sample.labels),
            "signal_positions": (("sequence", "slot"), sample.signal_positions),
            "signal_tokens": (("sequence", "slot"), sample.signal_tokens),
        },
        coords={"position": np.arange(settings["length"]), "slot": [0, 1], "class_pair": ("class", pairs)},
        attrs=provenance_attrs(config, family="readoff", seed=settings["seed"]),
    )


def regression_dataset(config: dict) -> xr.Dataset:
    """Evaluation tasks of in-context linear regression (SCIENCE.md §6) with the GD and least-squares references.

    eta* is line-searched on this very set, so the one-step-GD loss is the best any one-step learner reaches.
    """
    settings = config["regression"]
    d, n_context = settings["dim"], settings["n_context"]
    sample = sample_regression(settings["eval_tasks"], d, n_context, derived_rng(settings["seed"], "regression-eval"))
    eta = optimal_gd_step(sample)
    gd = gd_prediction(sample.tokens, eta)
    least_squares = least_squares_prediction(sample.tokens)
    return xr.Dataset(
        {
            "tokens": (("task", "position", "feature"), sample.tokens),
            "targets": (("task",), sample.targets),
            "weights": (("task", "dim"), sample.weights),
            "gd_prediction": (("task",), gd),
            "least_squares_prediction": (("task",), least_squares),
        },
        coords={"position": np.arange(n_context + 1), "feature": np.arange(d + 1), "dim": np.arange(d)},
        attrs={
            "gd_eta": float(eta),
            "gd_loss": mean_squared_loss(gd, sample.targets),
            "least_squares_loss": mean_squared_loss(least_squares, sample.targets),
            "zero_loss": zero_loss(d),
            **provenance_attrs(config, family="regression", seed=settings["seed"]),
        },
    )
