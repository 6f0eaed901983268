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
        "generalisation_loss": Variable(("n_eval", "scale"), "loss at n_eval context examples, inputs x scale"),
        "generalisation_gradient_cosine": Variable(
            ("n_eval", "scale"), "cosine of d y_hat / d x_query with one-step GD's (trained eta) there"
        ),
        "generalisation_prediction_rmse": Variable(
            ("n_eval", "scale"), "RMS difference from one-step GD's predictions (trained eta) there"
        ),
    }
)
REFERENCES = {
    "generalisation_gd_loss": Variable(("n_eval", "scale"), "one-step GD's loss at the trained eta, per (N, scale)"),
    "generalisation_least_squares_loss": Variable(("n_eval", "scale"), "least squares' loss, per (N, scale)"),
}
COMBINED_STORE = MODEL_STORE.combined(GRID_AXES, references=REFERENCES)
