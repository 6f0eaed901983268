"""What the regression stores hold: the per-model evidence store and the combined grid store."""

from headshare.tasks.base import StoreContract, Variable

GRID_AXES = ("attention", "n_layers", "n_heads", "d_head", "seed")

MODEL_STORE = StoreContract(
    {
        "loss": Variable((), "evaluation loss 0.5 (y_hat - y)^2 at the query"),
        "gd_loss_ratio": Variable((), "loss / one-step GD's loss (line-searched eta)"),
        "gradient_cosine": Variable((), "cosine of d y_hat / d x_query, model vs one-step GD"),
        "prediction_l2": Variable((), "RMS difference of the model's and GD's predictions"),
        "prediction": Variable(("task",), "the model's predictions on the first evaluation tasks"),
    }
)
COMBINED_STORE = MODEL_STORE.combined(GRID_AXES)
