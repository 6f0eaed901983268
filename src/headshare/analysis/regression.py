"""In-context regression: how close a trained model's predictor is to one step of GD.

Matching losses alone could hide a different predictor, so the comparison is also made on
the predictor's sensitivity to the query: d y_hat / d x_q. For one GD step of size eta from
w = 0 the prediction is y_hat = w_1 . x_q with w_1 = (eta / N) sum_i y_i x_i, so its query
gradient is w_1 itself.
"""

import numpy as np


def gd_query_gradient(tokens: np.ndarray, eta: float) -> np.ndarray:
    """d y_hat / d x_q of the one-step-GD predictor, per task: (n_tasks, d).

    ``tokens`` is (n_tasks, n_context + 1, d + 1): rows (x_j, y_j) with the query row last
    (its y entry is ignored).
    """
    tokens = np.asarray(tokens, dtype=np.float64)
    if tokens.ndim != 3 or tokens.shape[1] < 2 or tokens.shape[2] < 2:
        raise ValueError(
            "tokens must have shape (n_tasks, n_context + 1, d + 1) with n_context >= 1 and "
            f"d >= 1, got {tokens.shape}"
        )
    context = tokens[:, :-1]
    return (eta / context.shape[1]) * np.einsum("tn,tnd->td", context[:, :, -1], context[:, :, :-1])


def input_gradient_cosine(grad_model: np.ndarray, grad_reference: np.ndarray) -> float:
    """Mean over tasks of the cosine between two query gradients, each (n_tasks, d)."""
    grad_model = np.asarray(grad_model, dtype=np.float64)
    grad_reference = np.asarray(grad_reference, dtype=np.float64)
    if grad_model.ndim != 2 or grad_model.shape != grad_reference.shape:
        raise ValueError(
            "gradients must both have shape (n_tasks, d), "
            f"got {grad_model.shape} and {grad_reference.shape}"
        )
    norms = np.linalg.norm(grad_model, axis=1) * np.linalg.norm(grad_reference, axis=1)
    if np.any(norms == 0):
        raise ValueError(
            f"cosine is undefined for zero gradients ({int(np.sum(norms == 0))} tasks)"
        )
    return float(np.mean(np.einsum("td,td->t", grad_model, grad_reference) / norms))


def prediction_l2(y_model: np.ndarray, y_reference: np.ndarray) -> float:
    """Root mean squared difference between two predictors over the same tasks.

    The Euclidean norm of the difference divided by sqrt(n_tasks), so it does not grow
    with the number of tasks evaluated.
    """
    y_model = np.asarray(y_model, dtype=np.float64)
    y_reference = np.asarray(y_reference, dtype=np.float64)
    if y_model.ndim != 1 or y_model.shape != y_reference.shape or y_model.size == 0:
        raise ValueError(
            f"predictions must both be non-empty (n_tasks,) arrays, "
            f"got {y_model.shape} and {y_reference.shape}"
        )
    return float(np.sqrt(np.mean((y_model - y_reference) ** 2)))
