"""Currying: is a context's effect on a trained model a change of its weights?

A context c curries the model into a function of the query alone, x -> T_W(c, x): the model run on
the context rows followed by the query row (x, 0), read at the last position. This module asks
whether a W' in the same model class (the same ``ModelConfig``) gives that function with no context
at all, T_W'(x) = T_W(c, x), where T_W'(x) is the model run on the one-token input (x, 0); how far
W' lies from W; whether W' - W points along one step of fine-tuning W on c's examples (Dai et al.
2022: in-context learning as implicit fine-tuning); and which linear predictor W' implements,
compared with one step of gradient descent, w_1 = (eta / N) sum_j y_j x_j.

How W' is found. Starting from W, damped Gauss-Newton (Levenberg-Marquardt) minimises the mean
squared difference between T_W'(x) and T_W(c, x) over the fitting queries. Each step is the
minimum-norm one: delta = J^T (J J^T + lambda I)^-1 r, J the Jacobian of the one-token outputs
with respect to every parameter and r the remaining difference, so W' - W stays in the span of
the gradients the queries see and, where an exact update exists, W' is close to the one nearest
W (exactly the nearest when the outputs are linear in the weights). That is what makes
``distance`` and ``finetune_cosine`` properties of the model rather than of the optimiser: a
first-order optimiser such as Adam moves every coordinate its gradient touches by about its
learning rate, so its W' - W is dominated by directions the fit does not need and its distance
grows with the learning rate. Where no exact update exists the steps stall at a local minimum of
the fit and ``residual`` says how far from exact it is.

Everything runs in float64 (each member's weights are cast), so an exact update shows up as a
residual near round-off rather than at float32's ~1e-7 floor. All contexts of one member are
fitted at once, as an ensemble of copies of that member: copies never interact, so each follows
exactly the trajectory it would follow alone. Nothing is random: the result depends only on the
model, the contexts, the queries and the hyperparameters.

Cost: each Gauss-Newton step forms J (n_queries x n_parameters per context) and J J^T, so a step
costs about n_contexts * n_queries^2 * n_parameters flops; n_queries is the main knob (it must
exceed the number of independent directions the one-token outputs can move in, 86 for a fresh
1-layer linear-attention model with d_model 32 and d = 10, for the held-out residual to mean
anything).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call

from headshare.model import EnsembleTransformer

# Queries per forward pass when computing T_W(c, x) on full-length inputs; bounds the memory of
# the activations ([n_contexts, chunk, N + 1, d_model] per site) independently of n_queries.
_QUERY_CHUNK = 512
# Most Jacobian entries (float64) formed at once; the contexts are processed in groups that fit.
_JACOBIAN_ENTRIES = 1 << 24
# Levenberg-Marquardt damping lambda = mu * trace(J J^T): its first value, its floor (well above
# the round-off of J J^T, so the Cholesky factorisation succeeds) and the value past which a
# context's fit counts as stalled (no step of any length lowers its loss).
_MU_START, _MU_MIN, _MU_STALLED = 1e-9, 1e-14, 1e3
# A step that lowers the loss by less than this fraction of it ends the fit: a minimum short of exact.
_STALL = 1e-6


@dataclass(frozen=True)
class Currying:
    """Per member (axis 0) and context (axis 1) of one ``curry`` call, defined there.

    residual, effect_residual, distance, finetune_cosine, steps_taken: (E, n_contexts);
    implied_predictor: (E, n_contexts, d).
    """

    residual: np.ndarray
    effect_residual: np.ndarray
    distance: np.ndarray
    finetune_cosine: np.ndarray
    implied_predictor: np.ndarray
    steps_taken: np.ndarray


def curry(
    model: EnsembleTransformer,
    contexts: np.ndarray,
    queries: np.ndarray,
    held_out: np.ndarray,
    *,
    steps: int = 20,
    tolerance: float = 1e-10,
    device: torch.device | str = "cpu",
) -> Currying:
    """Fit, for every member of ``model`` and every context, a W' with T_W'(x) = T_W(c, x).

    contexts: (n_contexts, N, d + 1) context rows (x_j, y_j); N + 1 must not exceed ``cfg.n_ctx``.
    queries: (n_queries, d) query inputs the fit uses; held_out: (n_held_out, d) query inputs it
        is judged on (pass different draws).
    steps: most Gauss-Newton steps (each forms one Jacobian); ``steps=0`` leaves W' = W, which
        measures how far the context already is from no context at all.
    tolerance: a context's fit stops once its mean squared difference on ``queries`` is at most
        ``tolerance`` times the difference at W' = W, the context's whole effect (1e-10: 1e-5 of
        the effect's RMS left; Gauss-Newton converges quadratically, so a tighter tolerance costs
        about one more step).

    Returned per member and context, all on ``held_out``:
      residual = mean_x (T_W'(x) - T_W(c, x))^2 / mean_x (T_W(c, x) - mean_x' T_W(c, x'))^2,
        0 for an exact weight update and 1 for the best constant predictor; NaN where T_W(c, x)
        does not vary with x.
      effect_residual = mean_x (T_W'(x) - T_W(c, x))^2 / mean_x (T_W(x) - T_W(c, x))^2, the share
        of the context's effect that the weight change leaves unexplained (1 when W' = W). Unlike
        ``residual`` it stays informative when the context barely changes the output (an untrained
        model, whose ``residual`` is near 0 even at W' = W).
      distance = ||W' - W|| / ||W||, every parameter flattened together.
      finetune_cosine = cosine between W' - W and ``finetune_direction`` (one step of plain GD on
        c's examples fed as one-token queries); NaN where W' = W.
      implied_predictor: x-coefficients of the least-squares fit of T_W'(x) on [x, 1].
      steps_taken: Gauss-Newton steps taken before the tolerance was met, the fit stalled or
        ``steps`` ran out.
    """
    contexts, queries, held_out = _checked_inputs(model, contexts, queries, held_out)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance!r}")
    device = torch.device(device)
    n_members, n_contexts = model.n_members, contexts.shape[0]
    fields = {
        name: np.empty((n_members, n_contexts))
        for name in (
            "residual",
            "effect_residual",
            "distance",
            "finetune_cosine",
            "steps_taken",
        )
    }
    predictor = np.empty((n_members, n_contexts, contexts.shape[2] - 1))
    names = _parameter_names(model)
    context_t = torch.as_tensor(contexts, dtype=torch.float64, device=device)
    fit_t = _one_token(torch.as_tensor(queries, dtype=torch.float64, device=device))
    held_t = _one_token(torch.as_tensor(held_out, dtype=torch.float64, device=device))
    for member in range(n_members):
        copies = _copies(model, member, n_contexts, device)
        start = _flat(copies, names).clone()  # [C, P], every row the member's W
        with torch.no_grad():
            fit_target = _in_context(copies, context_t, fit_t)
            held_target = _in_context(copies, context_t, held_t)
            held_start = _query_only(copies, held_t)
        direction = _finetune_direction(copies, context_t, names)
        fields["steps_taken"][member] = _gauss_newton(
            copies, names, fit_t, fit_target, steps, tolerance
        )
        with torch.no_grad():
            change = _flat(copies, names) - start
            held_fit = _query_only(copies, held_t)
        error = torch.mean((held_fit - held_target) ** 2, dim=1)
        spread = torch.mean(
            (held_target - held_target.mean(dim=1, keepdim=True)) ** 2, dim=1
        )
        effect = torch.mean((held_start - held_target) ** 2, dim=1)
        fields["residual"][member] = _ratio(error, spread)
        fields["effect_residual"][member] = _ratio(error, effect)
        fields["distance"][member] = (
            (change.norm(dim=1) / start.norm(dim=1)).cpu().numpy()
        )
        fields["finetune_cosine"][member] = cosine(
            change.cpu().numpy(), direction.cpu().numpy()
        )
        predictor[member] = (
            linear_coefficients(held_out, held_fit.cpu().numpy())
        )
    return Currying(implied_predictor=predictor, **fields)


def finetune_direction(
    model: EnsembleTransformer, contexts: np.ndarray, device: torch.device | str = "cpu"
) -> np.ndarray:
    """(E, n_contexts, P): minus the gradient, in float64, of the fine-tuning loss on each context.

    Each context row (x_j, y_j) becomes the one-token input (x_j, 0) with target y_j, and the loss
    is 0.5 mean_j (T_W(x_j) - y_j)^2; one step of plain gradient descent moves W along this
    direction. P counts every parameter, flattened in ``model.named_parameters()`` order, each
    without its member dim: the order ``curry`` measures W' - W in.
    """
    contexts = _checked_contexts(model, contexts)
    device = torch.device(device)
    names = _parameter_names(model)
    context_t = torch.as_tensor(contexts, dtype=torch.float64, device=device)
    directions = [
        _finetune_direction(
            _copies(model, member, contexts.shape[0], device), context_t, names
        )
        for member in range(model.n_members)
    ]
    return torch.stack(directions).cpu().numpy()


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity along the last axis (the other axes broadcast); NaN where either is zero."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    dots = np.sum(a * b, axis=-1)
    return np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), np.nan)


def gd_step_predictor(contexts: np.ndarray, eta: float) -> np.ndarray:
    """(n_contexts, d): w_1 = (eta / N) sum_j y_j x_j, one GD step of size eta from w = 0 on each
    context's loss 0.5 mean_j (w . x_j - y_j)^2."""
    contexts = np.asarray(contexts, dtype=np.float64)
    if contexts.ndim != 3 or contexts.shape[1] < 1 or contexts.shape[2] < 2:
        raise ValueError(
            f"contexts must have shape (n_contexts, N >= 1, d + 1 >= 2), got {contexts.shape}"
        )
    x, y = contexts[:, :, :-1], contexts[:, :, -1]
    return (eta / contexts.shape[1]) * np.einsum("cn,cnd->cd", y, x)


def gd_predictor_cosine(
    implied_predictor: np.ndarray, contexts: np.ndarray, eta: float
) -> np.ndarray:
    """Cosine between ``implied_predictor`` (..., n_contexts, d) and one-step GD's w_1 on each
    context: (..., n_contexts). A positive eta's size does not change a cosine; its sign flips it."""
    return cosine(implied_predictor, gd_step_predictor(contexts, eta))


def linear_coefficients(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x-coefficients w of the least-squares fit y ~ x . w + b, for x (n, d) and y (..., n): (..., d).

    Solved from the normal equations, summed by ``np.einsum``'s own loops: a threaded LAPACK solver
    (``torch.linalg.lstsq``) rounds differently with the number of threads, and the pipeline's
    stores must not depend on how many cores a job had.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.shape[-1] != x.shape[0]:
        raise ValueError(f"need x (n, d) and y (..., n), got {x.shape} and {y.shape}")
    design = np.concatenate([x, np.ones_like(x[:, :1])], axis=1)
    gram = np.einsum("ni,nj->ij", design, design)
    moments = np.einsum("ni,...n->...i", design, y)
    solution = np.linalg.solve(gram, moments.reshape(-1, design.shape[1]).T).T
    return solution[:, :-1].reshape(*y.shape[:-1], x.shape[1])


def _checked_contexts(model: EnsembleTransformer, contexts: np.ndarray) -> np.ndarray:
    cfg = model.cfg
    if cfg.input_dim is None or cfg.input_dim < 2:
        raise ValueError(
            f"currying needs a model with continuous inputs (x, y), got input_dim={cfg.input_dim}"
        )
    contexts = np.asarray(contexts, dtype=np.float64)
    if (
        contexts.ndim != 3
        or contexts.shape[0] < 1
        or contexts.shape[1] < 1
        or contexts.shape[2] != cfg.input_dim
    ):
        raise ValueError(
            f"contexts must have shape (n_contexts >= 1, N >= 1, {cfg.input_dim}), got {contexts.shape}"
        )
    if contexts.shape[1] + 1 > cfg.n_ctx:
        raise ValueError(
            f"N = {contexts.shape[1]} context rows plus the query exceed n_ctx = {cfg.n_ctx}"
        )
    return contexts


def _checked_inputs(
    model: EnsembleTransformer,
    contexts: np.ndarray,
    queries: np.ndarray,
    held_out: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    contexts = _checked_contexts(model, contexts)
    d = contexts.shape[2] - 1
    arrays = []
    for name, array in (("queries", queries), ("held_out", held_out)):
        array = np.asarray(array, dtype=np.float64)
        if array.ndim != 2 or array.shape[0] < 2 or array.shape[1] != d:
            raise ValueError(f"{name} must have shape (n >= 2, {d}), got {array.shape}")
        arrays.append(array)
    return contexts, arrays[0], arrays[1]


def _parameter_names(model: EnsembleTransformer) -> list[str]:
    return [name for name, _ in model.named_parameters()]


def _one_token(x: Tensor) -> Tensor:
    """Query inputs (n, d) -> one-token inputs (n, 1, d + 1) reading (x, 0)."""
    return torch.cat([x, torch.zeros_like(x[:, :1])], dim=1)[:, None]


def _copies(
    model: EnsembleTransformer, member: int, n_copies: int, device: torch.device
) -> EnsembleTransformer:
    """``n_copies`` float64 copies of one member, stacked as an ensemble."""
    state = {
        k: v.to(device=device, dtype=torch.float64)
        for k, v in model.member_state_dict(member).items()
    }
    return EnsembleTransformer.from_members(model.cfg, [state] * n_copies).to(device)


def _flat(model: EnsembleTransformer, names: list[str]) -> Tensor:
    """[E, P]: each member's parameters flattened in ``names`` order (detached)."""
    params = dict(model.named_parameters())
    return torch.cat(
        [params[name].detach().reshape(model.n_members, -1) for name in names], dim=1
    )


@torch.no_grad()
def _set_flat(model: EnsembleTransformer, names: list[str], flat: Tensor) -> None:
    """Inverse of ``_flat``: write [E, P] into the members' parameters."""
    params = dict(model.named_parameters())
    offset = 0
    for name in names:
        param = params[name]
        size = param[0].numel()
        param.copy_(flat[:, offset : offset + size].view_as(param))
        offset += size


def _in_context(
    copies: EnsembleTransformer, contexts: Tensor, queries: Tensor
) -> Tensor:
    """[C, n]: T_W(c, x), copy c run on context c's rows then each query row, at the last position."""
    C, N, width = contexts.shape
    outputs = []
    for begin in range(0, queries.shape[0], _QUERY_CHUNK):
        rows = queries[begin : begin + _QUERY_CHUNK]  # [n, 1, d + 1]
        tokens = torch.cat(
            [
                contexts[:, None].expand(C, rows.shape[0], N, width),
                rows[None].expand(C, -1, 1, width),
            ],
            dim=2,
        )
        outputs.append(copies.last_logits(tokens)[:, :, 0])
    return torch.cat(outputs, dim=1)


def _query_only(copies: EnsembleTransformer, queries: Tensor) -> Tensor:
    """[C, n]: T_W'(x), each copy run on the one-token inputs (x, 0)."""
    return copies(queries[None].expand(copies.n_members, *queries.shape))[:, :, 0, 0]


def _finetune_direction(
    copies: EnsembleTransformer, contexts: Tensor, names: list[str]
) -> Tensor:
    """[C, P]: minus the gradient of 0.5 mean_j (T_W(x_j) - y_j)^2 over context c's rows, per copy c."""
    inputs = torch.cat(
        [contexts[..., :-1], torch.zeros_like(contexts[..., -1:])], dim=2
    )[:, :, None]
    loss = (
        0.5
        * torch.mean((copies(inputs)[:, :, 0, 0] - contexts[..., -1]) ** 2, dim=1).sum()
    )
    params = dict(copies.named_parameters())
    grads = torch.autograd.grad(
        loss, [params[name] for name in names], allow_unused=True
    )
    flat = [
        (torch.zeros_like(params[name]) if grad is None else grad).reshape(
            copies.n_members, -1
        )
        for name, grad in zip(names, grads)
    ]
    return -torch.cat(flat, dim=1)


def _jacobian(
    copies: EnsembleTransformer, names: list[str], which: Tensor, queries: Tensor
) -> Tensor:
    """[len(which), n, P]: d T_W'(x) / d W' of copies ``which`` at each one-token query.

    One forward and backward pass of an ensemble with a member per (copy, query), each member seeing
    its one query: the per-member parameter gradients are the Jacobian's rows.
    """
    n_copies, n_queries = len(which), queries.shape[0]
    n_rows = n_copies * n_queries
    params = dict(copies.named_parameters())
    rows = {
        name: params[name]
        .detach()[which]
        .repeat_interleave(n_queries, 0)
        .requires_grad_(True)
        for name in names
    }
    buffers = dict(copies.named_buffers())
    inputs = (
        queries[None]
        .expand(n_copies, *queries.shape)
        .reshape(n_rows, 1, 1, queries.shape[-1])
    )
    outputs = functional_call(
        EnsembleTransformer(copies.cfg, n_rows), {**rows, **buffers}, (inputs,)
    )
    grads = torch.autograd.grad(
        outputs.sum(), [rows[name] for name in names], allow_unused=True
    )
    return torch.cat(
        [
            (torch.zeros_like(rows[name]) if grad is None else grad).reshape(
                n_copies, n_queries, -1
            )
            for name, grad in zip(names, grads)
        ],
        dim=2,
    )


def _gauss_newton(
    copies: EnsembleTransformer,
    names: list[str],
    queries: Tensor,
    targets: Tensor,
    steps: int,
    tolerance: float,
) -> np.ndarray:
    """Levenberg-Marquardt on each copy's mean_x (T_W'(x) - target)^2, in place; returns the steps taken.

    Each step solves (K + lambda I) y = r with K = J J^T and moves by J^T y (the minimum-norm step
    as lambda -> 0). A step that does not lower the loss is retried with lambda ten times larger;
    one that does lowers lambda tenfold for the next step. A copy stops when its loss reaches
    ``tolerance`` times its value at the start, when a step lowers it by less than a relative
    ``_STALL``, or when no step lowers it (lambda past its cap): a minimum short of exact.
    """
    n_copies, n_queries = targets.shape
    n_params = sum(p[0].numel() for p in copies.parameters())
    with torch.no_grad():
        outputs = _query_only(copies, queries)
    loss = torch.mean((outputs - targets) ** 2, dim=1)
    goal = (
        tolerance * loss
    )  # relative to the context's whole effect, the loss at W' = W
    mu = torch.full((n_copies,), _MU_START, dtype=torch.float64, device=targets.device)
    running = torch.ones(n_copies, dtype=torch.bool, device=targets.device)
    taken = np.zeros(n_copies)
    group = max(1, _JACOBIAN_ENTRIES // (n_queries * n_params))
    identity = torch.eye(n_queries, dtype=torch.float64, device=targets.device)
    for _ in range(steps):
        running &= (loss > goal) & (mu < _MU_STALLED)
        active = torch.nonzero(running).flatten()
        if active.numel() == 0:
            break
        taken[active.cpu().numpy()] += 1
        flat = _flat(copies, names)
        # Every copy's first step starts at the same W: one Jacobian serves them all.
        shared = torch.equal(flat[active], flat[active[:1]].expand(len(active), -1))
        groups = (
            [active]
            if shared
            else [active[i : i + group] for i in range(0, len(active), group)]
        )
        for rows in groups:
            # J: [1 or R, Q, P]
            J = _jacobian(copies, names, rows[:1] if shared else rows, queries)
            K = J @ J.transpose(1, 2)
            trace = K.diagonal(dim1=1, dim2=2).sum(dim=1)
            residual = (targets[rows] - outputs[rows])[:, :, None]
            pending = torch.ones(len(rows), dtype=torch.bool, device=targets.device)
            while bool(pending.any()):
                damping = mu[rows] * trace
                if shared and bool((damping == damping[0]).all()):
                    damping = damping[:1]
                factor, info = torch.linalg.cholesky_ex(
                    K + damping[:, None, None] * identity
                )
                failed = (info != 0).expand(len(rows))
                solved = torch.cholesky_solve(
                    residual, torch.where((info != 0)[:, None, None], identity, factor)
                )
                trial = flat[rows] + (J.transpose(1, 2) @ solved)[:, :, 0]
                trial = torch.where(pending[:, None], trial, flat[rows])
                _set_flat(copies, names, _scatter(flat, rows, trial))
                with torch.no_grad():
                    trial_outputs = _query_only(copies, queries)[rows]
                trial_loss = torch.mean((trial_outputs - targets[rows]) ** 2, dim=1)
                accepted = pending & ~failed & (trial_loss < loss[rows])
                rejected = pending & ~accepted
                stalled = accepted & (loss[rows] - trial_loss <= _STALL * loss[rows])
                flat[rows] = torch.where(accepted[:, None], trial, flat[rows])
                outputs[rows] = torch.where(
                    accepted[:, None], trial_outputs, outputs[rows]
                )
                loss[rows] = torch.where(accepted, trial_loss, loss[rows])
                mu[rows] = torch.where(
                    accepted, torch.clamp(mu[rows] / 10, min=_MU_MIN), mu[rows]
                )
                mu[rows] = torch.where(rejected, mu[rows] * 10, mu[rows])
                running[rows] &= ~stalled
                pending = rejected & (mu[rows] < _MU_STALLED)
            _set_flat(copies, names, flat)
    return taken


def _scatter(flat: Tensor, rows: Tensor, values: Tensor) -> Tensor:
    """``flat`` with ``rows`` replaced by ``values`` (a copy)."""
    out = flat.clone()
    out[rows] = values
    return out


def _ratio(numerator: Tensor, denominator: Tensor) -> np.ndarray:
    numerator, denominator = numerator.cpu().numpy(), denominator.cpu().numpy()
    return np.where(
        denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan
    )
