"""The hmm task's figures, declared once each; the draw code is in :mod:`headshare.tasks.hmm.plots`."""

from __future__ import annotations

from headshare.figures.spec import MODEL, FigureSpec, drawn_by

_PLOTS = "headshare.tasks.hmm.plots"
_SEED_BAND = "lines: mean over seeds, bands: min-max over seeds"

FIGURES = (
    FigureSpec(
        name="attention_decay",
        task="hmm",
        title=f"Attention from the last query position vs distance, per head ({_SEED_BAND})",
        caption=(
            "Mean attention from the last query position against distance d - s (log scale), per head (every "
            "layer), with the predicted |lambda|^(d-s) decay of each factor (dashed) and the exact filter's "
            "effective decay (solid black), both anchored at the heads' mean attention at distance 1; rows are "
            "conditions, columns numbers of heads, and there is one file per emission fidelity a, loss "
            "positions, head size and number of layers. Distance 0 (shaded) is not identifiable because the "
            "residual stream already holds the current token."
        ),
        draw=drawn_by(_PLOTS, "attention_decay"),
        facets=("condition", "n_heads"),
        split=("a", "loss", "d_head", "n_layers"),
    ),
    FigureSpec(
        name="attention_decay_by_a",
        task="hmm",
        title=f"Attention vs distance across emission fidelities a, per head ({_SEED_BAND})",
        caption=(
            "The attention-vs-distance curves of attention_decay arranged by emission fidelity a (columns) "
            "for each condition (rows), one file per number of heads, loss positions, head size and number of "
            "layers: the exact filter's decay approaches |lambda| only as a approaches 1/3."
        ),
        draw=drawn_by(_PLOTS, "attention_decay_by_a"),
        facets=("condition", "a"),
        split=("n_heads", "loss", "d_head", "n_layers"),
    ),
    FigureSpec(
        name="decay_rates",
        task="hmm",
        title="Fitted attention decay rate vs emission fidelity (one point per seed and head; bars: CI over "
        "query positions; fit on distances ≥ 1)",
        caption=(
            "Fitted per-head attention decay rates (log-linear fit on distances >= 1, bars: CI over query "
            "positions; one point per seed, layer and head, colour = number of heads) against emission "
            "fidelity a, beside each factor's |lambda| (dashed) and the exact filter's geometric-mean decay "
            "ratio (black); one panel per condition, one file per loss positions, head size and number of layers."
        ),
        draw=drawn_by(_PLOTS, "decay_rates"),
        facets=("condition", "a", "n_heads"),
        split=("loss", "d_head", "n_layers"),
    ),
    FigureSpec(
        name="decay_phase",
        task="hmm",
        title="Attention decay of the head matched to each factor, divided by |λ| and by the exact filter's "
        "r_eff, vs emission fidelity (points: mean over seeds, bars: min-max over seeds)",
        caption=(
            "The fitted attention decay rate (distances >= 1; a parity-split head on the parity it favours) of "
            "the head matched to each factor, as the filter_decay prediction matches them, divided by the "
            "factor's |lambda| (left of each pair) and by the exact filter's geometric-mean effective decay "
            "r_eff (right), against emission fidelity a; colour = number of heads, marker = factor, mean over "
            "seeds with min-max bars; two panels per condition, one file per loss positions, head size and "
            "number of layers. Ratios to |lambda| approach 1 only as a approaches 1/3, where the filter itself "
            "forgets at |lambda|; ratios to r_eff stay near 1 at every a if attention tracks the filter."
        ),
        draw=drawn_by(_PLOTS, "decay_phase"),
        facets=("condition", "a", "n_heads"),
        split=("loss", "d_head", "n_layers"),
    ),
    FigureSpec(
        name="excess_heatmap",
        task="hmm",
        title="Normalised excess loss (L_model − L_opt) / (L_unigram − L_opt) vs number of heads; 0 = exact "
        f"filter ({_SEED_BAND})",
        caption=(
            "Normalised excess loss (L_model - L_opt) / (L_unigram - L_opt), paired against the exact filter, "
            "against the number of heads, one line per head size (mean over seeds, band: min-max over seeds), "
            "one panel per condition (its context gain in the panel title), one file per emission fidelity a, "
            "loss positions and number of layers."
        ),
        draw=drawn_by(_PLOTS, "excess_heatmap"),
        facets=("condition", "n_heads", "d_head"),
        split=("a", "loss", "n_layers"),
    ),
    FigureSpec(
        name="belief_r2",
        task="hmm",
        title=f"Linear read-out of exact belief states from the final residual stream: held-out R² ({_SEED_BAND})",
        caption=(
            "Held-out R^2 of a linear read-out of the exact belief states (joint and per factor) from the final "
            "residual stream against the number of heads (mean over seeds, band: min-max over seeds), one panel "
            "per condition, one file per emission fidelity a, loss positions, head size and number of layers."
        ),
        draw=drawn_by(_PLOTS, "belief_r2"),
        facets=("condition", "n_heads"),
        split=("a", "loss", "d_head", "n_layers"),
    ),
    FigureSpec(
        name="belief_simplex",
        task="hmm",
        title="Belief geometry of one model: exact beliefs vs linear read-out (colour = exact belief)",
        caption=(
            "Exact belief states of each factor on the probability simplex beside their linear read-out from "
            "the residual stream, coloured by the exact belief, for one model per condition: the largest model "
            "(most layers, heads and dimensions per head) at the largest emission fidelity a, trained on the "
            "first listed loss positions, seed = the first listed seed, all named in the title."
        ),
        draw=drawn_by(_PLOTS, "belief_simplex"),
        source=MODEL,
        split=("condition",),
        summarised=(),
        pick={
            "n_layers": "largest",
            "n_heads": "largest",
            "d_head": "largest",
            "a": "largest",
            "loss": "first listed",
            "seed": "first listed",
        },
    ),
    FigureSpec(
        name="ablation_matrix",
        task="hmm",
        title="Head ablation: rise in each factor's marginal loss as a share of the factor's context gain "
        "(heads ranked per seed, then mean over seeds)",
        caption=(
            "Rise in each factor's marginal loss when one head is mean-ablated, as a share of that factor's "
            "context gain; every (layer, head) of a model is ranked within each seed by how much more it serves "
            "factor 1 than factor 2 before averaging over seeds, so specialised heads show as a diagonal; rows "
            "list each number of heads' ranked heads, one panel per condition, one file per emission fidelity "
            "a, loss positions, head size and number of layers."
        ),
        draw=drawn_by(_PLOTS, "ablation_matrix"),
        facets=("condition", "n_heads"),
        split=("a", "loss", "d_head", "n_layers"),
    ),
    FigureSpec(
        name="head_factor_share",
        task="hmm",
        title="Which head writes which factor: share of each head's output variance in each factor's belief "
        "subspace (heads ranked per seed, then mean over seeds)",
        caption=(
            "Share of each head's output variance (hook_result at every query) inside each factor's belief "
            "subspace of the final residual stream, an ablation-free counterpart of ablation_matrix; heads ranked "
            "within each seed by how much more they serve factor 1 than factor 2 before averaging over seeds; rows "
            "list each number of heads' ranked heads, one panel per condition, one file per emission fidelity a, "
            "loss positions, head size and number of layers."
        ),
        draw=drawn_by(_PLOTS, "head_factor_share"),
        facets=("condition", "n_heads"),
        split=("a", "loss", "d_head", "n_layers"),
    ),
    FigureSpec(
        name="factor_geometry",
        task="hmm",
        title="Factored belief geometry: overlap of the factors' belief subspaces and the joint read-out's "
        "effective dimension (dots: seeds; bars: mean, min-max)",
        caption=(
            "Left: overlap of the two factors' belief subspaces in the final residual stream (mean squared cosine "
            "of their principal angles; 0 = orthogonal, 1 = shared). Right: the number of principal directions "
            "of the joint belief read-out's fitted values that keep 95% of its R^2, beside the factored count "
            "(sum of the factors' belief dimensions, diamonds) and the product count (crosses); per condition, "
            "colour = number of heads, one file per emission fidelity a, loss positions, head size and number "
            "of layers."
        ),
        draw=drawn_by(_PLOTS, "factor_geometry"),
        facets=("condition", "n_heads"),
        split=("a", "loss", "d_head", "n_layers"),
    ),
    FigureSpec(
        name="factor_overlap_training",
        task="hmm",
        title="Overlap of the factors' belief subspaces over training, on the held-out convergence batch "
        f"({_SEED_BAND})",
        caption=(
            "The factor subspace overlap of factor_geometry measured on the held-out convergence batch at every "
            "evaluation during training (all sequence positions, no held-out split: a trend, not a score), one "
            "panel per condition, one line per number of heads, one file per emission fidelity a, loss "
            "positions, head size and number of layers; lines end where a model stopped."
        ),
        draw=drawn_by(_PLOTS, "factor_overlap_training"),
        facets=("condition", "n_heads"),
        split=("a", "loss", "d_head", "n_layers"),
    ),
)
