"""Factored belief geometry: where in the residual stream each factor's belief is written, and who writes it.

For a product of independent processes, a model may keep each factor's belief in its own subspace (the
sum of the factors' dimensions) or mix them into one representation of the joint belief (their product).
A factor's subspace is where its belief is *written*: the row space of the least-squares map from the
factor's belief (centred, one state dropped: beliefs sum to one) to the activations. The read-out
direction (activations -> belief) is the wrong object for this: it leans on whatever correlates with the
belief, noise directions included, so two factors squeezed into one plane would still get read-outs in
different directions; the factors being independent, regressing the activations on one factor's belief
alone is unbiased. Two factors' subspaces are compared by their principal angles; the joint belief read-out's
effective dimension is how many principal directions of its fitted values keep a fraction of its R^2; a
head's output is split by how much of its variance lies in each factor's subspace.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

RANK_TOLERANCE = 1e-8  # singular values below this fraction of the largest are rank deficiency
DIMENSION_FRACTION = 0.95


def belief_subspace(activations: np.ndarray, beliefs: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Orthonormal basis (d, r) of the directions in which ``beliefs`` (N, m) are written into ``activations``
    (N, d): the row space of the weighted least-squares map from the centred beliefs (m - 1 states) to the
    centred activations; r <= m - 1."""
    activations, beliefs = np.asarray(activations, dtype=np.float64), np.asarray(beliefs, dtype=np.float64)
    if activations.ndim != 2 or beliefs.ndim != 2 or len(activations) != len(beliefs) or beliefs.shape[1] < 2:
        raise ValueError(
            f"activations (N, d) and beliefs (N, m >= 2) must share N, got {activations.shape} and {beliefs.shape}"
        )
    weights = np.ones(len(beliefs)) if weights is None else np.asarray(weights, dtype=np.float64)
    root = np.sqrt(weights / weights.sum())[:, None]
    centre = lambda values: (values - (root[:, 0] ** 2) @ values) * root  # noqa: E731
    varying = centre(activations)
    encoding = np.linalg.lstsq(centre(beliefs[:, :-1]), varying, rcond=None)[0]  # (m - 1, d)
    left, singular, _ = np.linalg.svd(encoding.T, full_matrices=False)
    if np.linalg.norm(varying) <= RANK_TOLERANCE * np.abs(activations).max(initial=0.0):
        return left[:, :0]  # activations that do not vary (beyond round-off) hold no belief
    return left[:, singular > RANK_TOLERANCE * singular[0]]


def principal_angles(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Principal angles (radians, ascending) between the column spaces of ``first`` and ``second``."""
    return np.sort(linalg.subspace_angles(first, second))


def subspace_overlap(first: np.ndarray, second: np.ndarray) -> float:
    """Mean squared cosine of the principal angles between two subspaces: 0 when orthogonal, 1 when one
    lies inside the other. NaN when either is empty."""
    if first.shape[1] == 0 or second.shape[1] == 0:
        return float("nan")
    return float(np.mean(np.cos(principal_angles(first, second)) ** 2))


def effective_dimension(predictions: np.ndarray, weights: np.ndarray | None = None,
                        fraction: float = DIMENSION_FRACTION) -> int:
    """The fewest principal directions of a read-out's fitted values (N, m) that keep ``fraction`` of their
    weighted variance: the rank-k truncation of the fitted values keeping that fraction keeps the same
    fraction of the read-out's R^2, as the residual is orthogonal to everything the read-out can fit."""
    predictions = np.asarray(predictions, dtype=np.float64)
    weights = np.ones(len(predictions)) if weights is None else np.asarray(weights, dtype=np.float64)
    weights = weights / weights.sum()
    centred = predictions - weights @ predictions
    variances = np.linalg.eigvalsh((centred * weights[:, None]).T @ centred)[::-1]
    total = variances.sum()
    if total <= 0:
        return 0
    return int(np.searchsorted(np.cumsum(variances) / total, fraction - 1e-12) + 1)


def variance_share(outputs: np.ndarray, basis: np.ndarray) -> float:
    """The share of the variance of ``outputs`` (N, d) that lies in the span of the orthonormal ``basis``."""
    centred = np.asarray(outputs, dtype=np.float64) - np.mean(outputs, axis=0)
    total = np.sum(centred**2)
    if total == 0 or basis.shape[1] == 0:
        return float("nan")
    return float(np.sum((centred @ basis) ** 2) / total)
