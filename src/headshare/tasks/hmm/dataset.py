"""The evaluation dataset of one product condition at one emission fidelity, with its exact references.

Training draws fresh samples every step; this fixed, seeded dataset is what every model of the condition
is evaluated on, so that losses are paired across models and against the exact filter.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from headshare.provenance import provenance_attrs
from headshare.seeding import derived_rng
from headshare.tasks.hmm.exact import conditional_entropies, effective_decay, filter_log_loss, filter_sensitivity
from headshare.tasks.hmm.sampler import sample_product
from headshare.tasks.hmm.settings import HMMSettings

SEQUENCE_CONVENTION = (
    "sequences hold context+1 tokens drawn from the stationary distribution; the model reads tokens "
    "0..context-1 and predicts tokens 1..context, so the exact optimum at target position t (1-based "
    "index t+1) is H(X_(t+1) | X_<=t)"
)


def hmm_dataset(settings: HMMSettings, condition_id: str, a: float) -> xr.Dataset:
    """Sequences of one product condition at emission fidelity ``a``, with every exact reference.

    Holds the joint and per-factor tokens, hidden states and filter beliefs; the exact optimal loss per
    position; the exact filter's log loss on these very sequences (for paired excess loss); and the filter's
    replacement sensitivity S(n) with its effective decay r_eff(n) = S(n+1)/S(n), per factor (exact) and for
    the product (Monte-Carlo).
    """
    condition = settings.condition(condition_id)
    p1, p2 = condition.factor_processes(a)
    joint = condition.process(a)
    context = settings.context
    length = context + 1
    rng = derived_rng(settings.seed, "hmm-eval", condition.id, a)
    sample = sample_product(p1, p2, settings.eval_sequences, length, rng)

    factor_entropies = np.stack([conditional_entropies(p, length) for p in (p1, p2)])
    factor_sensitivity = np.stack([filter_sensitivity(p, context) for p in (p1, p2)])
    product_sensitivity = filter_sensitivity(
        joint, context, n_samples=settings.sensitivity_samples,
        rng=derived_rng(settings.seed, "hmm-sensitivity", condition.id, a),
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
        **provenance_attrs(settings.config, task="hmm", condition=condition.id, a=a, seed=settings.seed),
    )
    return dataset
