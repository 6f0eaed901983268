"""What the regression stores hold: the per-model evidence store and the combined grid store."""

from headshare.tasks.base import StoreContract, Variable

GRID_AXES = ("attention", "architecture", "n_layers", "n_heads", "d_head", "seed")

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
        "least_squares_gap_closed": Variable(
            (), "(one-step GD's loss - loss) / (one-step GD's loss - least squares' loss): 0 at GD, 1 at least squares"
        ),
        "multistep_loss_ratio": Variable((), "loss / the loss of K-step GD, K = n_layers (step sizes line-searched)"),
        "multistep_gradient_cosine": Variable((), "cosine of d y_hat / d x_query with K-step GD's"),
        "gdpp_loss_ratio": Variable((), "loss / the loss of K-step GD++ (von Oswald et al.), K = n_layers"),
        "gdpp_gradient_cosine": Variable((), "cosine of d y_hat / d x_query with K-step GD++'s"),
        "curry_residual": Variable(
            ("curry_context",), "fitted weight update's residual, relative to the variance of the model's predictions"
        ),
        "curry_distance": Variable(("curry_context",), "||W' - W|| / ||W|| of the fitted weight update"),
        "curry_finetune_cosine": Variable(
            ("curry_context",), "cosine of W' - W with one fine-tuning step on the context's examples as queries"
        ),
        "curry_gd_cosine": Variable(
            ("curry_context",), "cosine of the linear predictor that W' implies with one-step GD's w on the context"
        ),
    }
)
REFERENCES = {
    "generalisation_gd_loss": Variable(("n_eval", "scale"), "one-step GD's loss at the trained eta, per (N, scale)"),
    "generalisation_least_squares_loss": Variable(("n_eval", "scale"), "least squares' loss, per (N, scale)"),
    "multistep_gd_loss": Variable(("depth",), "K-step GD's loss, step sizes line-searched on the evaluation set"),
    "multistep_eta": Variable(("depth", "step"), "K-step GD's step sizes (NaN beyond K)"),
    "gdpp_loss": Variable(("depth",), "K-step GD++'s loss, step sizes and input transforms line-searched"),
    "gdpp_eta": Variable(("depth", "step"), "K-step GD++'s step sizes"),
    "gdpp_gamma": Variable(("depth", "step"), "K-step GD++'s input transforms x <- (I - gamma S) x"),
}
COMBINED_STORE = MODEL_STORE.combined(GRID_AXES, references=REFERENCES)
