"""Currying (a context as a change of weights) against models built by hand whose answers are known in closed form."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import torch

from headshare.model import EnsembleTransformer, ModelConfig
from headshare.tasks.regression.currying import (
    cosine,
    curry,
    finetune_direction,
    gd_predictor_cosine,
    gd_step_predictor,
    linear_coefficients,
)

# The bias-shift model: d = 3 inputs, N = 4 context rows, residual dims 0-2 carry x, 3 carries y, 4 the attention.
D, N, WIDTH = 3, 4, 6
SLOPE = np.array([1.0, -2.0, 0.5])  # a: the one-token model is a . x + BIAS
BIAS, GAIN = 0.25, 1.5  # b_U and gamma (the unembedding's read of the attention output)


def shift_model(
    attention: str = "linear", sharpness: float = 0.0
) -> EnsembleTransformer:
    """One layer whose one-token output is a . x + BIAS (its value reads y, which a lone query has as 0).

    linear: q and k are constant biases with q . k / sqrt(d_head) = 1, so at the last of T positions every key
    weighs 1 / T and the context adds GAIN sum_j y_j / (N + 1), a constant in x: raising b_U by that much is an
    exact update. softmax (``sharpness`` > 0): q = sharpness x and k = x, so the context adds GAIN times a kernel
    average of its y values, nonlinear in x, while one token's softmax weight is 1 and its output stays affine.
    """
    d_head = 2 if attention == "linear" else D
    zeros, eye = (
        partial(torch.zeros, dtype=torch.float64),
        partial(torch.eye, dtype=torch.float64),
    )
    cfg = ModelConfig(
        n_ctx=N + 1,
        d_model=WIDTH,
        n_heads=1,
        d_head=d_head,
        d_out=1,
        input_dim=D + 1,
        attention=attention,
        positional=False,
    )
    W_E = zeros(D + 1, WIDTH)
    W_E[:, : D + 1] = eye(D + 1)
    W_Q, W_K, W_V = (zeros(WIDTH, d_head) for _ in range(3))
    b_Q, b_K = zeros(d_head), zeros(d_head)
    if attention == "linear":
        b_Q[0], b_K[0] = 1.0, math.sqrt(d_head)
    else:
        W_Q[:D, :D], W_K[:D, :D] = sharpness * eye(D), eye(D)
    W_V[D, 0] = 1.0
    W_O = zeros(1, d_head, WIDTH)
    W_O[0, 0, D + 1] = 1.0
    W_U = zeros(WIDTH, 1)
    W_U[:D, 0], W_U[D + 1, 0] = torch.from_numpy(SLOPE), GAIN
    state = {
        "W_E": W_E, "b_E": zeros(WIDTH), "W_U": W_U, "b_U": zeros(1) + BIAS,
        "blocks.0.attn.W_QKV": torch.cat([W_Q, W_K, W_V], dim=1),
        "blocks.0.attn.b_QKV": torch.cat([b_Q, b_K, zeros(d_head)]),
        "blocks.0.attn.W_O": W_O, "blocks.0.attn.b_O": zeros(WIDTH),
    }  # fmt: skip
    return EnsembleTransformer.from_members(cfg, [state])


def weight_norm(model: EnsembleTransformer) -> float:
    return float(
        torch.sqrt(sum((p.detach().double() ** 2).sum() for p in model.parameters()))
    )


def symmetric_contexts(offsets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Contexts whose inputs come in pairs +-x (so sum_j x_j = 0) and whose outputs are the one-token model's plus
    a per-context offset delta: y_j = a . x_j + BIAS + delta."""
    half = rng.uniform(-0.5, 0.5, size=(len(offsets), N // 2, D))
    x = np.concatenate([half, -half], axis=1)
    y = x @ SLOPE + BIAS + offsets[:, None]
    return np.concatenate([x, y[:, :, None]], axis=2)


def queries(rng: np.random.Generator, n: int, d: int = D) -> np.ndarray:
    return rng.uniform(-0.5, 0.5, size=(n, d))


def test_a_context_that_shifts_the_output_is_curried_into_the_nearest_bias_change():
    rng = np.random.default_rng(0)
    model = shift_model()
    offsets = np.array([0.2, 0.5, 1.0])
    contexts = symmetric_contexts(offsets, rng)
    fit, held = queries(rng, 128), queries(rng, 512)
    # T_W(c, x) - T_W(x), the same for every x
    shift = GAIN * contexts[:, :, -1].sum(axis=1) / (N + 1)
    result = curry(model, contexts, fit, held)

    assert result.residual.shape == (1, 3)
    assert result.implied_predictor.shape == (1, 3, D)
    assert np.all(result.residual < 1e-12) and np.all(result.effect_residual < 1e-9)
    # T_W' on the held-out queries is a . x + BIAS + shift: the held-out residual is relative to
    # var(a . x), so it is near 0 only if the fit matched the shift.
    np.testing.assert_allclose(
        result.implied_predictor[0], np.tile(SLOPE, (3, 1)), atol=1e-7
    )
    # Known exact update: b_U += shift, at distance |shift| / ||W||. The nearest one moves every bias that
    # shifts the output uniformly, along g_0 = d T / d (b_U, b_O, b_E, b_V): |g_0|^2 = 1 + |W_U|^2 +
    # |W_U + gamma e_y|^2 + gamma^2 (via b_U, b_O, b_E, b_V) = 1 + 2 |a|^2 + 4 gamma^2, at distance
    # |shift| / (|g_0| ||W||).
    known = np.abs(shift) / weight_norm(model)
    nearest = known / math.sqrt(1 + 2 * SLOPE @ SLOPE + 4 * GAIN**2)
    assert np.all(result.distance[0] <= known)
    np.testing.assert_allclose(result.distance[0], nearest, rtol=1e-6)
    # Fine-tuning on c: y_j - T_W(x_j) = delta for every row and sum_j x_j = 0, so minus the gradient is
    # delta * g_0, the direction of the nearest update (shift > 0, delta > 0).
    np.testing.assert_allclose(result.finetune_cosine[0], 1.0, atol=1e-6)


def test_the_residuals_are_normalised_by_the_variance_and_by_the_context_effect():
    """With no fitting (W' = W) the error is the whole shift: residual = shift^2 / var_x(a . x), effect_residual 1."""
    rng = np.random.default_rng(1)
    model = shift_model()
    contexts = symmetric_contexts(np.array([0.3, 0.9]), rng)
    fit, held = queries(rng, 64), queries(rng, 400)
    shift = GAIN * contexts[:, :, -1].sum(axis=1) / (N + 1)
    result = curry(model, contexts, fit, held, steps=0)
    np.testing.assert_allclose(
        result.residual[0], shift**2 / np.var(held @ SLOPE), rtol=1e-10
    )
    # so the test above would fail on a fit that did nothing
    assert np.all(result.residual > 0.5)
    np.testing.assert_allclose(result.effect_residual[0], 1.0, rtol=1e-10)
    np.testing.assert_array_equal(result.distance, 0.0)
    assert np.all(np.isnan(result.finetune_cosine))
    np.testing.assert_array_equal(result.steps_taken, 0)
    # implied_predictor of the unchanged model: its exact linear function
    np.testing.assert_allclose(
        result.implied_predictor[0], np.tile(SLOPE, (2, 1)), atol=1e-12
    )


def test_a_context_effect_outside_the_one_token_class_leaves_the_least_squares_residual():
    """Softmax over one key is 1, so every one-token softmax model is affine in x. The context's kernel average is
    not: the best W' is the least-squares affine fit to T_W(c, x) on the fitting queries."""
    rng = np.random.default_rng(2)
    model = shift_model("softmax", sharpness=12.0)
    contexts = np.concatenate(
        [queries(rng, 2 * N).reshape(2, N, D), 3 * rng.standard_normal((2, N, 1))],
        axis=2,
    )
    fit, held = queries(rng, 192), queries(rng, 1024)

    def in_context(x: np.ndarray) -> np.ndarray:
        """T_W(c, x) from the equations: scores q . k_t / sqrt(D), the query's own value 0."""
        keys = contexts[:, :, :D]  # (2, N, D); the query's own key is x, its value 0
        scores = 12.0 / math.sqrt(D) * np.einsum("qd,cnd->cqn", x, keys)
        own = 12.0 / math.sqrt(D) * np.sum(x * x, axis=1)[None, :, None].repeat(2, 0)
        weights = np.exp(np.concatenate([scores, own], axis=2))
        weights /= weights.sum(axis=2, keepdims=True)
        return (
            x @ SLOPE
            + BIAS
            + GAIN * np.einsum("cqn,cn->cq", weights[:, :, :N], contexts[:, :, -1])
        )

    design = np.concatenate([fit, np.ones((len(fit), 1))], axis=1)
    coefficients, *_ = np.linalg.lstsq(
        design, in_context(fit).T, rcond=None
    )  # (D + 1, 2)
    best = (np.concatenate([held, np.ones((len(held), 1))], axis=1) @ coefficients).T
    target = in_context(held)
    expected = np.mean((best - target) ** 2, axis=1) / np.var(target, axis=1)

    result = curry(model, contexts, fit, held)
    assert np.all(expected > 0.05)  # the case is clearly not exactly curried
    np.testing.assert_allclose(result.residual[0], expected, rtol=1e-3)
    np.testing.assert_allclose(
        result.implied_predictor[0], coefficients[:D].T, rtol=1e-3, atol=1e-6
    )


def test_finetune_direction_is_minus_the_autograd_gradient_of_the_stated_loss():
    cfg = ModelConfig(
        n_ctx=N + 1,
        d_model=8,
        n_heads=2,
        d_head=3,
        d_out=1,
        input_dim=D + 1,
        attention="softmax",
        positional=False,
        mlp=True,
        d_mlp=5,
    )
    model = EnsembleTransformer.from_seeds(cfg, [3, 4])
    rng = np.random.default_rng(3)
    contexts = rng.uniform(-0.5, 0.5, size=(2, N, D + 1))
    directions = finetune_direction(model, contexts)
    for member in range(2):
        single = EnsembleTransformer.from_members(
            cfg, [{k: v.double() for k, v in model.member_state_dict(member).items()}]
        )
        for c, context in enumerate(torch.tensor(contexts)):
            inputs = context.clone()
            inputs[:, -1] = 0.0
            outputs = single(inputs[None, :, None, :])[0, :, 0, 0]
            loss = 0.5 * torch.mean((outputs - context[:, -1]) ** 2)
            grads = torch.autograd.grad(loss, list(single.parameters()))
            expected = -torch.cat([g.reshape(-1) for g in grads]).numpy()
            np.testing.assert_allclose(
                directions[member, c], expected, rtol=1e-10, atol=1e-14
            )
            assert cosine(directions[member, c], 2.5 * expected) == pytest.approx(
                1.0, abs=1e-12
            )


def test_cosine_on_hand_made_vectors():
    assert cosine(np.array([1.0, 0.0]), np.array([1.0, 1.0])) == pytest.approx(
        1 / math.sqrt(2), abs=1e-15
    )
    np.testing.assert_allclose(
        cosine(
            np.array([[1.0, 2.0], [3.0, 0.0]]), np.array([[-2.0, -4.0], [0.0, 5.0]])
        ),
        [-1.0, 0.0],
        atol=1e-15,
    )
    assert np.isnan(cosine(np.zeros(3), np.ones(3)))


def test_linear_coefficients_recover_an_affine_function_exactly():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((50, 4))
    w = np.array([[1.0, -2.0, 3.0, 0.5], [0.0, 1.0, 0.0, -1.0]])
    np.testing.assert_allclose(
        linear_coefficients(x, w @ x.T + np.array([[7.0], [-3.0]])), w, atol=1e-12
    )


def gd_model(output_scale: float, d: int, n: int) -> EnsembleTransformer:
    """Linear self-attention that predicts output_scale / (sqrt(d + 1) (n + 1)) sum_j y_j x_j . x_q: queries and
    keys read x, values read y (as in test_regression_generalisation)."""
    width = d + 1
    cfg = ModelConfig(
        n_ctx=n + 1,
        d_model=width,
        n_heads=1,
        d_head=width,
        d_out=1,
        input_dim=width,
        attention="linear",
        positional=False,
    )
    x_only, y_only = (
        torch.diag(torch.tensor([1.0] * d + [0.0])),
        torch.zeros(width, width),
    )
    y_only[d, d] = 1.0
    state = {
        "W_E": torch.eye(width), "b_E": torch.zeros(width),
        "W_U": torch.eye(width)[:, d:] * output_scale, "b_U": torch.zeros(1),
        "blocks.0.attn.W_QKV": torch.cat([x_only, x_only, y_only], dim=1),
        "blocks.0.attn.b_QKV": torch.zeros(3 * width),
        "blocks.0.attn.W_O": torch.eye(width)[None], "blocks.0.attn.b_O": torch.zeros(width),
    }  # fmt: skip
    return EnsembleTransformer.from_members(cfg, [state])


def test_a_model_that_implements_gd_is_curried_into_the_gd_predictor():
    """The GD model's context makes the query's output w_1 . x_q with w_1 = (eta / N) sum_j y_j x_j; alone, a query
    reads 0. Reading x with w_1 is an exact update, so the implied predictor is w_1 (cosine 1)."""
    d, n, eta = 5, 6, 3.0
    model = gd_model(eta * math.sqrt(d + 1) * (n + 1) / n, d, n)
    rng = np.random.default_rng(5)
    x = rng.uniform(-0.5, 0.5, size=(3, n, d))
    y = np.einsum("cnd,cd->cn", x, rng.standard_normal((3, d)))
    contexts = np.concatenate([x, y[:, :, None]], axis=2)
    # The model's weights are float32 (curry casts them). With the default tolerance (1e-10) the fit stops
    # short of round-off; a smaller one takes it there.
    fit, held = queries(rng, 96, d), queries(rng, 256, d)
    assert np.all(curry(model, contexts, fit, held).residual < 1e-9)
    result = curry(model, contexts, fit, held, tolerance=1e-24)
    assert np.all(result.residual < 1e-14)
    np.testing.assert_allclose(
        result.implied_predictor[0],
        gd_step_predictor(contexts, eta),
        rtol=1e-6,
        atol=1e-9,
    )
    np.testing.assert_allclose(
        gd_predictor_cosine(result.implied_predictor, contexts, eta), 1.0, atol=1e-9
    )


def test_fitting_every_context_of_a_member_together_matches_fitting_each_alone():
    """Copies of a member never interact: a context's W' does not depend on the other contexts fitted with it."""
    cfg = ModelConfig(
        n_ctx=N + 1,
        d_model=8,
        n_heads=1,
        d_head=4,
        d_out=1,
        input_dim=D + 1,
        attention="linear",
        positional=False,
    )
    model = EnsembleTransformer.from_seeds(cfg, [7, 8])
    rng = np.random.default_rng(6)
    contexts = rng.uniform(-0.5, 0.5, size=(3, N, D + 1))
    fit, held = queries(rng, 96), queries(rng, 128)
    together = curry(model, contexts, fit, held, steps=6)
    alone = curry(model, contexts[1:2], fit, held, steps=6)
    for name in ("residual", "distance", "finetune_cosine", "implied_predictor"):
        np.testing.assert_allclose(
            getattr(together, name)[:, 1:2], getattr(alone, name), rtol=1e-6, atol=1e-12
        )
    again = curry(model, contexts, fit, held, steps=6)
    np.testing.assert_array_equal(together.distance, again.distance)  # deterministic


def test_curry_rejects_malformed_inputs():
    model = shift_model()
    rng = np.random.default_rng(7)
    contexts, fit = symmetric_contexts(np.array([0.1]), rng), queries(rng, 8)
    with pytest.raises(ValueError, match="contexts"):
        curry(model, contexts[:, :, :-1], fit, fit)
    with pytest.raises(ValueError, match="n_ctx"):
        curry(model, np.concatenate([contexts, contexts], axis=1), fit, fit)
    with pytest.raises(ValueError, match="held_out"):
        curry(model, contexts, fit, fit[:, :2])
    with pytest.raises(ValueError, match="steps"):
        curry(model, contexts, fit, fit, steps=-1)
