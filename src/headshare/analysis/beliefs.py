"""Linear read-out of exact belief states from residual-stream activations.

Belief-state geometry predicts that the residual stream holds the Bayes filter's belief
state as a linear image. The test is a probability-weighted least-squares regression with
intercept from activations to beliefs, fitted on one set of distinct prefixes and scored on
held-out prefixes, so that memorising a prefix cannot inflate the score.

Scores, all weighted by the (renormalised) prefix probabilities of the held-out rows:
- R^2 = 1 - SS_res / SS_tot with both sums taken over rows and summed over belief
  dimensions, SS_tot about the held-out weighted mean; per-dimension R^2 uses one column.
  A dimension that never varies on held-out rows gets NaN.
- RMSE = sqrt(SS_res / m): root mean squared error per belief coordinate.
"""

from dataclasses import dataclass

import numpy as np

DEFAULT_TEST_FRACTION = 0.2


@dataclass(frozen=True)
class BeliefFit:
    """A fitted affine map beliefs ~ activations @ coef + intercept and its held-out scores."""

    coef: np.ndarray  # (d, m)
    intercept: np.ndarray  # (m,)
    r2: float  # held-out, summed over belief dimensions
    r2_per_dim: np.ndarray  # (m,) held-out, one per belief dimension
    rmse: float  # held-out, per belief coordinate
    predictions: np.ndarray  # (N, m) for every row, train and held-out
    test_mask: np.ndarray  # (N,) bool, True on held-out rows


def belief_regression(
    activations: np.ndarray,
    beliefs: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    test_fraction: float | None = None,
    test_mask: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> BeliefFit:
    """Fit on train rows, score on held-out rows; each row is one distinct prefix.

    ``activations`` is (N, d), ``beliefs`` (N, m), ``weights`` (N,) prefix probabilities
    (None: equal). Give either an explicit boolean ``test_mask`` or an ``rng`` with which a
    ``test_fraction`` (default 0.2) of rows is drawn without replacement. Rank-deficient
    activations are fine: the minimum-norm least-squares solution is used.
    """
    activations = np.asarray(activations, dtype=np.float64)
    beliefs = np.asarray(beliefs, dtype=np.float64)
    if activations.ndim != 2 or beliefs.ndim != 2 or activations.shape[0] != beliefs.shape[0]:
        raise ValueError(
            "activations and beliefs must have shapes (N, d) and (N, m) with the same N, "
            f"got {activations.shape} and {beliefs.shape}"
        )
    if not (np.all(np.isfinite(activations)) and np.all(np.isfinite(beliefs))):
        raise ValueError("activations and beliefs must be finite")
    n_rows = activations.shape[0]
    weights = _row_weights(weights, n_rows)
    test_mask = _split_mask(n_rows, test_fraction, test_mask, rng)
    for name, rows in (("train", ~test_mask), ("held-out", test_mask)):
        if weights[rows].sum() <= 0:
            raise ValueError(f"the {name} rows must carry positive total weight")

    coef, intercept = _weighted_affine_fit(
        activations[~test_mask], beliefs[~test_mask], weights[~test_mask]
    )
    predictions = activations @ coef + intercept

    w = weights[test_mask] / weights[test_mask].sum()
    target = beliefs[test_mask]
    ss_res = w @ (target - predictions[test_mask]) ** 2  # (m,)
    ss_tot = w @ (target - w @ target) ** 2  # (m,)
    varies = ss_tot > 0
    r2_per_dim = np.where(varies, 1.0 - ss_res / np.where(varies, ss_tot, 1.0), np.nan)
    return BeliefFit(
        coef=coef,
        intercept=intercept,
        r2=float(1.0 - ss_res.sum() / ss_tot.sum()) if varies.any() else np.nan,
        r2_per_dim=r2_per_dim,
        rmse=float(np.sqrt(ss_res.mean())),
        predictions=predictions,
        test_mask=test_mask,
    )


def _row_weights(weights: np.ndarray | None, n_rows: int) -> np.ndarray:
    if weights is None:
        return np.ones(n_rows)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (n_rows,):
        raise ValueError(f"weights must have shape ({n_rows},), got {weights.shape}")
    if not np.all(np.isfinite(weights)) or weights.min() < 0:
        raise ValueError("weights must be finite and >= 0")
    return weights


def _split_mask(
    n_rows: int,
    test_fraction: float | None,
    test_mask: np.ndarray | None,
    rng: np.random.Generator | None,
) -> np.ndarray:
    """The held-out rows: the explicit mask, or a random ``test_fraction`` of the rows."""
    if test_mask is not None:
        if test_fraction is not None or rng is not None:
            raise ValueError("give either test_mask or (test_fraction, rng), not both")
        test_mask = np.asarray(test_mask)
        if test_mask.shape != (n_rows,) or test_mask.dtype != bool:
            raise ValueError(
                f"test_mask must be a boolean array of shape ({n_rows},), "
                f"got {test_mask.dtype} {test_mask.shape}"
            )
        return test_mask
    if rng is None:
        raise ValueError("give a test_mask or an rng to draw the held-out rows with")
    fraction = DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
    n_test = int(round(fraction * n_rows))
    if not 0 < fraction < 1 or not 0 < n_test < n_rows:
        raise ValueError(
            f"test_fraction must lie in (0, 1) and leave rows on both sides of {n_rows}, "
            f"got {fraction}"
        )
    mask = np.zeros(n_rows, dtype=bool)
    mask[rng.choice(n_rows, size=n_test, replace=False)] = True
    return mask


RCOND = 1e-6  # relative singular-value cutoff, a few float32 epsilons


def _weighted_affine_fit(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Minimise sum_i w_i |y_i - x_i B - c|^2: centre on weighted means, then lstsq.

    Directions whose singular value is below RCOND x the largest are dropped: activations come from float32
    models, so such directions are rounding noise, and fitting them makes held-out predictions explode.
    """
    w = weights / weights.sum()
    x_mean, y_mean = w @ x, w @ y
    root_w = np.sqrt(w)[:, None]
    coef = np.linalg.lstsq(root_w * (x - x_mean), root_w * (y - y_mean), rcond=RCOND)[0]
    return coef, y_mean - x_mean @ coef


def project_to_simplex_2d(beliefs: np.ndarray) -> np.ndarray:
    """Barycentric map of 3-state beliefs (..., 3) onto an equilateral triangle (..., 2).

    The states sit at (0, 0), (1, 0) and (1/2, sqrt(3)/2), so equal distances on the
    simplex stay equal in the plot.
    """
    beliefs = np.asarray(beliefs, dtype=np.float64)
    if beliefs.ndim < 1 or beliefs.shape[-1] != 3:
        raise ValueError(f"beliefs must have shape (..., 3), got {beliefs.shape}")
    vertices = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3.0) / 2.0]])
    return beliefs @ vertices
