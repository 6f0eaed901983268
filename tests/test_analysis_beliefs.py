"""Belief regression against synthetic embeddings with known answers."""

import numpy as np
import pytest

from headshare.analysis.beliefs import belief_regression, project_to_simplex_2d


def random_beliefs(rng: np.random.Generator, n: int, m: int = 3) -> np.ndarray:
    return rng.dirichlet(np.ones(m), size=n)


def test_linearly_embedded_beliefs_are_recovered_to_the_noise_level():
    rng = np.random.default_rng(0)
    beliefs = random_beliefs(rng, 4000)
    embedding = rng.standard_normal((3, 16))
    noise = 1e-3
    activations = beliefs @ embedding + 0.7 + noise * rng.standard_normal((4000, 16))
    weights = rng.random(4000)
    fit = belief_regression(activations, beliefs, weights, rng=np.random.default_rng(1))
    assert fit.r2 > 0.999
    assert np.all(fit.r2_per_dim > 0.999)
    # Beliefs vary only within the sum-zero plane (basis u); the least-noisy exact read-out
    # there is B = pinv(u^T E) u^T, which turns activation noise into belief noise of size
    # noise * |B|_F / sqrt(3) per coordinate.
    u = np.linalg.svd(np.eye(3) - 1 / 3)[0][:, :2]
    read_out = np.linalg.pinv(u.T @ embedding) @ u.T
    assert fit.rmse == pytest.approx(noise * np.linalg.norm(read_out) / np.sqrt(3), rel=0.05)
    assert fit.test_mask.sum() == 800


def test_exact_affine_map_gives_its_coefficients_and_intercept():
    rng = np.random.default_rng(2)
    activations = rng.standard_normal((200, 5))
    true_coef = rng.standard_normal((5, 2))
    true_intercept = np.array([3.0, -7.0])
    beliefs = activations @ true_coef + true_intercept
    fit = belief_regression(activations, beliefs, rng=rng)
    np.testing.assert_allclose(fit.coef, true_coef, atol=1e-10)
    np.testing.assert_allclose(fit.intercept, true_intercept, atol=1e-10)
    np.testing.assert_allclose(fit.predictions, beliefs, atol=1e-10)
    assert fit.r2 == pytest.approx(1.0) and fit.rmse < 1e-10


def test_pure_noise_activations_score_no_better_than_zero_held_out():
    rng = np.random.default_rng(3)
    beliefs = random_beliefs(rng, 2000)
    activations = rng.standard_normal((2000, 20))
    fit = belief_regression(activations, beliefs, test_fraction=0.5, rng=rng)
    assert -0.1 < fit.r2 < 0.01
    assert np.all(fit.r2_per_dim < 0.02)


def test_weighted_fit_equals_unweighted_fit_on_duplicated_rows():
    rng = np.random.default_rng(4)
    n = 60
    activations = rng.standard_normal((n, 4))
    beliefs = random_beliefs(rng, n)
    counts = rng.integers(0, 4, size=n)
    counts[:2] = 1  # both sides of the split keep weight
    test_mask = np.zeros(n, dtype=bool)
    test_mask[::3] = True
    weighted = belief_regression(activations, beliefs, counts.astype(float), test_mask=test_mask)
    duplicated = belief_regression(
        np.repeat(activations, counts, axis=0),
        np.repeat(beliefs, counts, axis=0),
        test_mask=np.repeat(test_mask, counts),
    )
    np.testing.assert_allclose(weighted.coef, duplicated.coef, rtol=1e-10)
    np.testing.assert_allclose(weighted.intercept, duplicated.intercept, rtol=1e-10)
    assert weighted.r2 == pytest.approx(duplicated.r2, rel=1e-10)
    assert weighted.rmse == pytest.approx(duplicated.rmse, rel=1e-10)
    np.testing.assert_allclose(weighted.r2_per_dim, duplicated.r2_per_dim, rtol=1e-10)


def test_r2_and_rmse_follow_their_definitions_on_the_held_out_rows():
    rng = np.random.default_rng(5)
    n = 300
    activations = rng.standard_normal((n, 3))
    beliefs = random_beliefs(rng, n) + 0.05 * activations[:, :1]
    weights = rng.random(n)
    fit = belief_regression(activations, beliefs, weights, rng=rng)
    rows = fit.test_mask
    w = weights[rows] / weights[rows].sum()
    residual = beliefs[rows] - fit.predictions[rows]
    spread = beliefs[rows] - np.average(beliefs[rows], axis=0, weights=w)
    ss_res = np.einsum("n,nm->m", w, residual**2)
    ss_tot = np.einsum("n,nm->m", w, spread**2)
    assert fit.r2 == pytest.approx(1 - ss_res.sum() / ss_tot.sum(), rel=1e-12)
    np.testing.assert_allclose(fit.r2_per_dim, 1 - ss_res / ss_tot, rtol=1e-12)
    assert fit.rmse == pytest.approx(np.sqrt(ss_res.sum() / 3), rel=1e-12)


def test_rank_deficient_activations_predict_like_their_full_rank_columns():
    rng = np.random.default_rng(6)
    base = rng.standard_normal((400, 3))
    beliefs = random_beliefs(rng, 400) + 0.1 * base
    redundant = np.concatenate([base, base @ rng.standard_normal((3, 5))], axis=1)
    test_mask = rng.random(400) < 0.25
    full = belief_regression(base, beliefs, test_mask=test_mask)
    deficient = belief_regression(redundant, beliefs, test_mask=test_mask)
    np.testing.assert_allclose(deficient.predictions, full.predictions, atol=1e-10)
    assert deficient.r2 == pytest.approx(full.r2, rel=1e-10)


def test_the_random_split_is_deterministic_given_the_seed():
    rng = np.random.default_rng(7)
    activations, beliefs = rng.standard_normal((100, 4)), random_beliefs(rng, 100)
    first = belief_regression(activations, beliefs, rng=np.random.default_rng(11))
    second = belief_regression(activations, beliefs, rng=np.random.default_rng(11))
    np.testing.assert_array_equal(first.test_mask, second.test_mask)
    assert first.r2 == second.r2


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # neither a mask nor an rng
        {"test_mask": np.zeros(10, dtype=bool)},  # nothing held out
        {"test_mask": np.ones(10, dtype=bool)},  # nothing to train on
        {"test_mask": np.arange(10) < 3, "rng": np.random.default_rng(0)},  # both
        {"test_mask": np.arange(10)},  # not boolean
        {"test_fraction": 1.0, "rng": np.random.default_rng(0)},
        {"weights": -np.ones(10), "rng": np.random.default_rng(0)},
    ],
)
def test_belief_regression_rejects_bad_input(kwargs):
    rng = np.random.default_rng(8)
    with pytest.raises(ValueError):
        belief_regression(rng.standard_normal((10, 2)), random_beliefs(rng, 10), **kwargs)


def test_mismatched_rows_are_rejected():
    with pytest.raises(ValueError):
        belief_regression(np.ones((5, 2)), np.ones((4, 3)), rng=np.random.default_rng(0))


def test_simplex_projection_maps_vertices_to_an_equilateral_triangle():
    corners = project_to_simplex_2d(np.eye(3))
    sides = [np.linalg.norm(corners[i] - corners[j]) for i, j in ((0, 1), (1, 2), (0, 2))]
    np.testing.assert_allclose(sides, 1.0)
    centre = project_to_simplex_2d(np.full(3, 1 / 3))
    np.testing.assert_allclose(centre, corners.mean(axis=0))
    midpoint = project_to_simplex_2d(np.array([[0.5, 0.5, 0.0]]))
    np.testing.assert_allclose(midpoint[0], (corners[0] + corners[1]) / 2)
    with pytest.raises(ValueError):
        project_to_simplex_2d(np.ones((4, 2)))
