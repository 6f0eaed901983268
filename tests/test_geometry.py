"""Factored belief geometry against known answers: activations built from known subspaces."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg, stats

from headshare.analysis.beliefs import belief_regression
from headshare.analysis.geometry import (
    effective_dimension,
    belief_subspace,
    principal_angles,
    subspace_overlap,
    variance_share,
)

D = 16


def simplex_points(n: int, states: int, rng: np.random.Generator) -> np.ndarray:
    return rng.dirichlet(np.ones(states), size=n)


def orthonormal(d: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.linalg.qr(rng.standard_normal((d, k)))[0]


def activations(beliefs: list[np.ndarray], planes: list[np.ndarray], rng: np.random.Generator, noise=0.01):
    """Each factor's belief written (centred) into its own plane (d, states - 1), plus isotropic noise."""
    total = sum((b - b.mean(axis=1, keepdims=True))[:, :-1] @ plane.T for b, plane in zip(beliefs, planes))
    return total + noise * rng.standard_normal(total.shape)


def fitted_subspaces(x: np.ndarray, beliefs: list[np.ndarray]) -> list[np.ndarray]:
    return [belief_subspace(x, b) for b in beliefs]


def test_orthogonal_factor_planes_give_overlap_zero_and_the_factored_dimension():
    rng = np.random.default_rng(0)
    basis = orthonormal(D, 4, rng)
    beliefs = [simplex_points(4000, 3, rng), simplex_points(4000, 3, rng)]
    x = activations(beliefs, [basis[:, :2], basis[:, 2:]], rng)
    first, second = fitted_subspaces(x, beliefs)
    assert first.shape == (D, 2) and second.shape == (D, 2)
    assert subspace_overlap(first, second) < 0.01
    assert subspace_overlap(first, basis[:, :2]) > 0.99  # the fitted read-out found the plane it was written to
    joint = np.einsum("ni,nj->nij", *beliefs).reshape(len(x), 9)
    fit = belief_regression(x, joint, rng=rng)
    assert effective_dimension(fit.predictions) == 4  # 2 + 2, not the product's 8


def test_a_shared_plane_gives_overlap_one():
    rng = np.random.default_rng(1)
    plane = orthonormal(D, 2, rng)
    turned = plane @ np.array([[0.6, -0.8], [0.8, 0.6]])  # the same plane, another basis
    beliefs = [simplex_points(4000, 3, rng), simplex_points(4000, 3, rng)]
    first, second = fitted_subspaces(activations(beliefs, [plane, turned], rng), beliefs)
    assert subspace_overlap(first, second) > 0.99


def test_principal_angles_are_scipys_and_overlap_is_their_mean_squared_cosine():
    rng = np.random.default_rng(2)
    first, second = orthonormal(D, 2, rng), orthonormal(D, 3, rng)
    np.testing.assert_allclose(principal_angles(first, second), np.sort(linalg.subspace_angles(first, second)))
    theta = 0.3
    line = np.eye(D)[:, :1]
    tilted = (np.cos(theta) * np.eye(D)[:, 0] + np.sin(theta) * np.eye(D)[:, 1])[:, None]
    np.testing.assert_allclose(principal_angles(line, tilted), [theta])
    assert subspace_overlap(line, tilted) == pytest.approx(np.cos(theta) ** 2)
    assert np.isnan(subspace_overlap(line, line[:, :0]))


def test_an_m_state_belief_is_written_in_at_most_m_minus_1_directions():
    rng = np.random.default_rng(3)
    beliefs = simplex_points(500, 3, rng)
    assert belief_subspace(rng.standard_normal((500, D)), beliefs).shape == (D, 2)
    assert belief_subspace(np.ones((500, D)), beliefs).shape == (D, 0)  # constant activations: written nowhere
    with pytest.raises(ValueError, match="m >= 2"):
        belief_subspace(np.ones((500, D)), beliefs[:, :1])


def test_effective_dimension_counts_the_directions_that_keep_the_variance():
    rng = np.random.default_rng(4)
    scales = np.array([10.0, 5.0, 3.0, 0.01, 0.01])
    points = rng.standard_normal((5000, 5)) * scales
    assert effective_dimension(points) == 3
    assert effective_dimension(points, fraction=0.5) == 1
    assert effective_dimension(np.zeros((10, 3))) == 0
    assert stats.pearsonr(points[:, 0], points[:, 1]).pvalue > 1e-4  # the axes are independent


def test_variance_share_is_one_inside_the_subspace_and_zero_outside():
    rng = np.random.default_rng(5)
    basis = orthonormal(D, 4, rng)
    inside = rng.standard_normal((500, 2)) @ basis[:, :2].T
    assert variance_share(inside, basis[:, :2]) == pytest.approx(1.0)
    assert variance_share(inside, basis[:, 2:]) == pytest.approx(0.0, abs=1e-12)
    mixed = inside + rng.standard_normal((500, 2)) @ basis[:, 2:].T
    assert variance_share(mixed, basis[:, :2]) == pytest.approx(0.5, abs=0.1)


def test_the_convergence_evaluator_tracks_the_geometry_of_every_member():
    import torch
    from helpers.configs import smoke_config

    from headshare import tasks
    from headshare.model import EnsembleTransformer

    task, settings = tasks.configured(smoke_config(), "hmm")
    cohort = task.cohorts(settings)[0]
    model = EnsembleTransformer.from_seeds(task.model_config(settings, cohort), [0, 1])
    with torch.no_grad():  # as the trainer calls it
        evaluated = task.evaluator(settings, cohort)(model)
    assert evaluated["factor_overlap"].shape == evaluated["belief_dimension"].shape == (len(cohort.members),)
    assert ((evaluated["factor_overlap"] >= 0) & (evaluated["factor_overlap"] <= 1)).all()
    assert set(evaluated["belief_dimension"]) <= set(range(1, 9))  # two 3-state factors: at most 8
