"""In-context regression comparisons: the GD query gradient against autograd."""

import numpy as np
import pytest
import torch

from headshare.analysis.regression import (
    gd_query_gradient,
    input_gradient_cosine,
    prediction_l2,
)
from headshare.tasks.regression.sampler import sample_regression


def one_step_gd_prediction(tokens: torch.Tensor, eta: float) -> torch.Tensor:
    """Take the GD step with autograd itself: w_1 = -eta * grad of the mean half squared
    context loss at w = 0, then predict w_1 . x_q."""
    x, y, x_query = tokens[:, :-1, :-1], tokens[:, :-1, -1], tokens[:, -1, :-1]
    w0 = torch.zeros(tokens.shape[0], x.shape[2], dtype=tokens.dtype, requires_grad=True)
    context_loss = 0.5 * ((torch.einsum("tnd,td->tn", x, w0) - y) ** 2).mean(dim=1).sum()
    (grad_w,) = torch.autograd.grad(context_loss, w0, create_graph=True)
    return ((-eta * grad_w) * x_query).sum(dim=1)


@pytest.mark.parametrize("d, n_context", [(10, 10), (3, 7)])
def test_gd_query_gradient_matches_autograd(d, n_context):
    sample = sample_regression(64, d, n_context, np.random.default_rng(d))
    tokens = torch.tensor(sample.tokens, requires_grad=True)
    eta = 6.06
    prediction = one_step_gd_prediction(tokens, eta)
    (grad_tokens,) = torch.autograd.grad(prediction.sum(), tokens)
    expected = grad_tokens[:, -1, :-1].numpy()
    np.testing.assert_allclose(gd_query_gradient(sample.tokens, eta), expected, rtol=1e-10)


def test_one_step_gd_loss_at_the_best_step_matches_the_published_value():
    # SCIENCE.md: d = N = 10, eta* ~ 6.06, loss 0.2061 +- 0.0003 (Monte Carlo).
    sample = sample_regression(200_000, 10, 10, np.random.default_rng(0))
    gradient = gd_query_gradient(sample.tokens, 6.06)
    prediction = np.einsum("td,td->t", gradient, sample.tokens[:, -1, :-1])
    assert 0.5 * np.mean((prediction - sample.targets) ** 2) == pytest.approx(0.2061, abs=0.003)


def test_cosine_is_one_for_parallel_and_minus_one_for_opposite_gradients():
    rng = np.random.default_rng(1)
    reference = rng.standard_normal((5, 4))
    assert input_gradient_cosine(3.0 * reference, reference) == pytest.approx(1.0)
    assert input_gradient_cosine(-reference, reference) == pytest.approx(-1.0)
    mixed = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, -2.0]])
    base = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert input_gradient_cosine(mixed, base) == pytest.approx((0 + 1 / np.sqrt(2) - 1) / 3)


def test_prediction_l2_is_the_root_mean_squared_difference():
    assert prediction_l2(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 0.0, 3.0, 4.0])) == 1.0


@pytest.mark.parametrize(
    "call",
    [
        lambda: gd_query_gradient(np.ones((2, 1, 3)), 1.0),  # no context
        lambda: input_gradient_cosine(np.zeros((2, 3)), np.ones((2, 3))),
        lambda: input_gradient_cosine(np.ones((2, 3)), np.ones((3, 3))),
        lambda: prediction_l2(np.ones(3), np.ones(4)),
    ],
)
def test_regression_analysis_rejects_bad_input(call):
    with pytest.raises(ValueError):
        call()
