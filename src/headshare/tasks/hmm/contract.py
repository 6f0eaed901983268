"""What the hmm stores hold: the per-model evidence store and the combined grid store."""

from headshare.tasks.base import StoreContract, Variable

LH = ("layer", "head")
GRID_AXES = ("condition", "n_layers", "n_heads", "d_head", "a", "loss", "seed")

MODEL_STORE = StoreContract(
    {
        "model_loss": Variable(("position",), "mean -log p of each predicted token (nats)"),
        "excess_loss": Variable((), "paired excess over the exact filter on the judged positions (nats)"),
        "excess_loss_se": Variable((), "standard error of excess_loss over sequences"),
        "normalised_excess": Variable((), "excess_loss / context gain"),
        "factor_excess_loss": Variable(("factor",), "each factor's marginal excess over its own filter"),
        "attention_distance": Variable((*LH, "distance"), "mean attention from the last query at distance d-s"),
        "attention_distance_all": Variable((*LH, "distance"), "mean attention over every query at distance d-s"),
        "attention_pattern_mean": Variable((*LH, "query_pos", "key_pos"), "attention pattern averaged over sequences"),
        "decay_rate": Variable(LH, "log-linear decay rate of attention with distance (distances >= 1)"),
        "decay_ci_low": Variable(LH),
        "decay_ci_high": Variable(LH),
        "decay_rate_parity": Variable((*LH, "parity"), "decay rate fitted on even / odd distances"),
        "decay_parity_ci_low": Variable((*LH, "parity")),
        "decay_parity_ci_high": Variable((*LH, "parity")),
        "belief_r2": Variable(("target",), "held-out R^2 of a linear read-out of the exact beliefs"),
        "belief_rmse": Variable(("target",)),
        "ablation_excess": Variable(LH, "rise in the joint loss when the head is mean-ablated (nats)"),
        "ablation_factor_excess": Variable((*LH, "factor"), "rise in each factor's marginal loss under ablation"),
        "factor_overlap": Variable((), "mean cos^2 of the principal angles between the factors' belief subspaces"),
        "factor_min_angle": Variable((), "smallest principal angle between the factors' belief subspaces (deg)"),
        "belief_dimension": Variable((), "directions keeping 95% of the joint belief read-out's R^2"),
        "head_factor_share": Variable((*LH, "factor"), "share of the head's output variance in each factor's subspace"),
        "belief_true_1": Variable(("simplex_point", "state_1")),
        "belief_pred_1": Variable(("simplex_point", "state_1")),
        "belief_true_2": Variable(("simplex_point", "state_2")),
        "belief_pred_2": Variable(("simplex_point", "state_2")),
        "attention_pattern": Variable(("sample", *LH, "query_pos", "key_pos"), "raw attention samples"),
        "resid_post": Variable(("sample", "query_pos", "d_model"), "final residual stream samples"),
        "head_result": Variable(("sample", "query_pos", *LH, "d_model"), "each head's output samples"),
    }
)

REFERENCES = {
    "optimal_loss": Variable(("condition", "a"), "mean H(X_t | X_<t) over the predicted positions (nats)"),
    "unigram_loss": Variable(("condition", "a")),
    "context_gain": Variable(("condition", "a"), "unigram loss minus the optimum (nats)"),
    "factor_context_gain": Variable(("condition", "a", "factor")),
    "factor_older_info": Variable(("condition", "a", "factor")),
    "filter_decay": Variable(("condition", "a", "step"), "the exact filter's effective decay r_eff(n)"),
    "factor_filter_decay": Variable(("condition", "a", "factor", "step")),
    "factored_dimension": Variable(("condition",), "sum of the factors' belief dimensions (states - 1 each)"),
    "product_dimension": Variable(("condition",), "the joint belief's dimension (states1 x states2 - 1)"),
}

EVALUATIONS = {
    "eval_attention": Variable(("eval_step", *LH, "distance"), "mean attention from the last query during training"),
    "eval_factor_overlap": Variable(("eval_step",), "the factors' belief subspace overlap during training"),
    "eval_belief_dimension": Variable(("eval_step",), "the joint read-out's effective dimension during training"),
}
COMBINED_STORE = MODEL_STORE.combined(GRID_AXES, REFERENCES, EVALUATIONS)
