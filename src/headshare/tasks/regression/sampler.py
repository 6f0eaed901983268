"""In-context linear regression and its exact reference predictors.

Each task draws w ~ N(0, I_d) and N + 1 inputs x ~ U(-0.5, 0.5)^d; the context tokens are
e_j = (x_j, y_j) with y_j = w . x_j (no noise) and the last token is the query (x_q, 0).
Tokens are float64 so the reference losses are exact to many digits; cast to float32 for
training.

References, from worst to best: the zero predictor (loss d/24), one step of gradient descent
from w = 0 with the best step size (what a linear self-attention layer can express), and the
posterior mean of w (Bayes-optimal).

Exact one-step-GD moments. Write s = E[x^2] = 1/12, m4 = E[x^4] = 1/80 for one coordinate,
A = (1/N) sum_i x_i x_i^T and g = w^T A x_q (the eta = 1 prediction), y = w^T x_q. Averaging
over w first (E[w w^T] = I):
    E[y^2] = d s,   E[g y] = s tr E[A] = d s^2,   E[g^2] = s E[tr A^2],
    E[tr A^2] = (1/N) E|x|^4 + ((N-1)/N) E[(x_i . x_j)^2]
              = (d m4 + d (d-1) s^2) / N + (N-1) d s^2 / N.
Hence E[loss(eta)] = 0.5 (E[y^2] - 2 eta E[g y] + eta^2 E[g^2]) and eta* = E[g y] / E[g^2].
For d = N = 10: eta* = 200/33 ~ 6.0606 and the minimal loss is 245/1188 ~ 0.206229.
"""

from dataclasses import dataclass

import numpy as np

X_SECOND_MOMENT = 1.0 / 12.0  # E[x^2] for x ~ U(-0.5, 0.5)
X_FOURTH_MOMENT = 1.0 / 80.0  # E[x^4] for x ~ U(-0.5, 0.5)


@dataclass(frozen=True)
class RegressionSample:
    """A batch of regression tasks: the model sees ``tokens`` and must predict ``targets``."""

    tokens: np.ndarray  # (n_tasks, n_context + 1, d + 1) float64; last row is (x_q, 0)
    targets: np.ndarray  # (n_tasks,) float64, y_q = w . x_q
    weights: np.ndarray  # (n_tasks, d) float64


def sample_regression(
    n_tasks: int, d: int, n_context: int, rng: np.random.Generator, scale: float = 1.0
) -> RegressionSample:
    """Draw ``n_tasks`` independent tasks, each with ``n_context`` examples and one query; inputs are
    x ~ U(-scale/2, scale/2)^d (``scale`` 1 is the training distribution)."""
    for name, value in (("n_tasks", n_tasks), ("d", d), ("n_context", n_context)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    weights = rng.standard_normal((n_tasks, d))
    x = rng.uniform(-0.5 * scale, 0.5 * scale, size=(n_tasks, n_context + 1, d))
    y = np.einsum("tjd,td->tj", x, weights)
    targets = y[:, -1].copy()
    y[:, -1] = 0.0
    tokens = np.concatenate([x, y[:, :, None]], axis=2)
    return RegressionSample(tokens=tokens, targets=targets, weights=weights)


def _split(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Context inputs (t, N, d), context outputs (t, N) and query input (t, d)."""
    if tokens.ndim != 3 or tokens.shape[1] < 2 or tokens.shape[2] < 2:
        raise ValueError(
            "tokens must have shape (n_tasks, n_context + 1, d + 1) with n_context >= 1 and "
            f"d >= 1, got {tokens.shape}"
        )
    return tokens[:, :-1, :-1], tokens[:, :-1, -1], tokens[:, -1, :-1]


def gd_prediction(tokens: np.ndarray, eta: float) -> np.ndarray:
    """Query prediction after one GD step of size ``eta`` from w = 0.

    The context loss 0.5 * sum_i (w . x_i - y_i)^2 / N has gradient -(1/N) sum_i y_i x_i at
    w = 0, so the step lands on w_1 = (eta / N) sum_i y_i x_i and predicts w_1 . x_q.
    """
    x, y, x_query = _split(tokens)
    w_after_step = (eta / x.shape[1]) * np.einsum("tn,tnd->td", y, x)
    return np.einsum("td,td->t", w_after_step, x_query)


def mean_squared_loss(predictions: np.ndarray, targets: np.ndarray) -> float:
    """The task's loss, mean over tasks of 0.5 * (y_hat - y_q)^2."""
    return float(0.5 * np.mean((predictions - targets) ** 2))


def gd_loss(sample: RegressionSample, eta: float) -> float:
    """Loss of the one-step-GD predictor with step size ``eta`` on ``sample``."""
    return mean_squared_loss(gd_prediction(sample.tokens, eta), sample.targets)


def optimal_gd_step(sample: RegressionSample) -> float:
    """Step size minimising ``gd_loss`` on ``sample``: E[g y] / E[g^2], g the eta = 1 prediction.

    The prediction is linear in eta, so the loss is a parabola in eta with this vertex.
    """
    unit = gd_prediction(sample.tokens, 1.0)
    return float(np.mean(unit * sample.targets) / np.mean(unit**2))


def least_squares_prediction(tokens: np.ndarray, ridge: float = 0.0) -> np.ndarray:
    """Query prediction with the posterior mean of w under the N(0, I) prior.

    ``ridge`` is the observation noise variance: w_hat = (X^T X + ridge I)^-1 X^T y. With
    ``ridge = 0`` (this task's noise-free data) the posterior mean is the minimum-norm
    least-squares solution, so this is the Bayes-optimal predictor; when N >= d the inputs
    span R^d almost surely, w is recovered exactly and the loss is ~0 (round-off only).
    When N < d the unseen directions keep their prior, leaving an expected loss of
    0.5 * (d - N) / 12.
    """
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    x, y, x_query = _split(tokens)
    if ridge == 0:
        w_hat = np.einsum("tdn,tn->td", np.linalg.pinv(x), y)
    else:
        gram = np.einsum("tnd,tne->tde", x, x) + ridge * np.eye(x.shape[2])
        w_hat = np.linalg.solve(gram, np.einsum("tnd,tn->td", x, y)[:, :, None])[:, :, 0]
    return np.einsum("td,td->t", w_hat, x_query)


def zero_loss(d: int) -> float:
    """Expected loss of predicting 0: 0.5 * E[(w . x_q)^2] = 0.5 * d * E[x^2] = d / 24."""
    return d / 24.0


def _gd_moments(d: int, n_context: int) -> tuple[float, float, float]:
    """Exact (E[y^2], E[g y], E[g^2]) over the task distribution; see the module docstring."""
    s, m4 = X_SECOND_MOMENT, X_FOURTH_MOMENT
    mean_trace_a_squared = (d * m4 + d * (d - 1) * s**2) / n_context + (
        (n_context - 1) * d * s**2 / n_context
    )
    return d * s, d * s**2, s * mean_trace_a_squared


def expected_optimal_gd_step(d: int, n_context: int) -> float:
    """Population step size minimising the expected one-step-GD loss."""
    _, gy, gg = _gd_moments(d, n_context)
    return gy / gg


def expected_gd_loss(d: int, n_context: int, eta: float) -> float:
    """Exact expected loss of the one-step-GD predictor with step size ``eta``."""
    yy, gy, gg = _gd_moments(d, n_context)
    return 0.5 * (yy - 2.0 * eta * gy + eta**2 * gg)
