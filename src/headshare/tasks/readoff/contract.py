"""What the readoff stores hold: the per-model evidence store and the combined grid store."""

from headshare.tasks.base import StoreContract, Variable

GRID_AXES = ("n_layers", "n_heads", "d_head", "seed")

MODEL_STORE = StoreContract(
    {
        "accuracy": Variable((), "held-out accuracy on the unordered signal pair"),
        "loss": Variable((), "held-out cross-entropy at the readoff position"),
        "signal_preference": Variable(("layer", "head", "signal"), "readoff attention on each signal token"),
        "preference_order": Variable(("layer", "head", "rank"), "signal tokens from most to least attended"),
        "preference_tau": Variable(("layer",), "Kendall tau between heads 0 and 1's orders (-1 = inverted)"),
        "readoff_attention": Variable(("sample", "layer", "head", "key_pos"), "raw readoff attention samples"),
    }
)
EVALUATIONS = {"eval_accuracy": Variable(("eval_step",), "held-out accuracy during training")}
COMBINED_STORE = MODEL_STORE.combined(GRID_AXES, evaluations=EVALUATIONS)
