"""Multi-step references for in-context regression: K steps of GD and of GD++.

A stack of K linear self-attention layers whose keys and values are the N context
tokens (the query never acts as a key) can carry out K steps of gradient descent on the
context loss 0.5/N sum_i (w . x_i - y_i)^2 from w = 0 and, if the layers also move the
inputs, "GD++" (von Oswald et al. 2022, "Transformers learn in-context by gradient
descent"). Sampling and the one-step reference live in ``sampler``; K = 1 here is
exactly ``sampler.gd_prediction``.

Token view (what ``multistep_prediction`` and ``multistep_weights`` compute). A task's
state is the context inputs X^(k) (N, d), the residual targets r^(k) (N,), the query
input x_q^(k) and the query prediction p^(k), starting from X^(0) = X, r^(0) = y,
x_q^(0) = x_q, p^(0) = 0. Step k = 1..K computes every update from the step's inputs,
in parallel, as one attention layer does:
    r_j^(k) = r_j^(k-1) - eta_k/N sum_i r_i^(k-1) x_i^(k-1) . x_j^(k-1)
    p^(k)   = p^(k-1)   + eta_k/N sum_i r_i^(k-1) x_i^(k-1) . x_q^(k-1)
    GD++ only: x^(k) = (I - gamma_k S^(k-1)) x^(k-1) for every context input and the
               query, with S^(k-1) = (1/N) sum_i x_i^(k-1) x_i^(k-1)^T (context only).
The prediction is p^(K). With every gamma_k = 0 this is plain K-step GD,
w_k = w_{k-1} + eta_k/N X^T (y - X w_{k-1}), predicting w_K . x_q. The last step's
gamma_K moves inputs that no later step reads, so it has no effect: K-step GD++ has
2K - 1 free parameters (eta_1..eta_K, gamma_1..gamma_{K-1}).

Equivalent w-form (the tests' independent check). With S = S^(0) = X^T X / N, induction
on k gives x^(k) = M_k x for every input, with M_0 = I, M_k = A_k M_{k-1} and
A_k = I - gamma_k M_{k-1} S M_{k-1}^T, because X^(k-1) = X M_{k-1}^T makes
S^(k-1) = M_{k-1} S M_{k-1}^T. If r^(k-1) = y - X w_{k-1} and p^(k-1) = w_{k-1} . x_q,
then sum_i r_i^(k-1) x_i^(k-1) = M_{k-1} X^T (y - X w_{k-1}), so both updates are
those of the preconditioned GD step
    w_k = w_{k-1} + eta_k/N M_{k-1}^T M_{k-1} X^T (y - X w_{k-1}).

Spectral view (what ``line_search`` optimises: fast, with a cheap exact gradient).
Every M_k is a polynomial in S (induction: A_k = I - gamma_k M_{k-1}^2 S), so in the
eigenbasis S = U diag(lambda) U^T each eigenvalue evolves on its own. With q_k the
square of M_k's eigenvalue and u_k = lambda q_k the eigenvalue of S^(k):
    phi_k = phi_{k-1} + eta_k q_{k-1} (1 - lambda phi_{k-1}),   phi_0 = 0,
    q_k   = q_{k-1} (1 - gamma_k u_{k-1})^2,                    q_0 = 1,
and w_K = phi_K(S) b with b = X^T y / N, so the prediction is
sum_j (U^T x_q)_j (U^T b)_j phi_K(lambda_j). The residual polynomial 1 - lambda phi_K is
prod_k (1 - eta_k u_{k-1}); for plain GD (u_k = lambda) it is prod_k (1 - eta_k lambda),
the prediction is linear in its coefficients, and plain GD's best steps are the
reciprocal roots of the least-squares residual polynomial (in any order).

Line search and its caveat. ``line_search`` minimises the loss on the tasks it is given:
exactly for plain GD (least squares, above), by a deterministic multi-start for GD++,
whose loss has several local minima. GD++'s best steps grow with K (d = N = 10:
eta ~ (3.5, 29, 260), gamma ~ (3.2, 29) for K = 3), and then the rare tasks whose
top eigenvalue lies past the edge of the transformed spectrum get their residual
amplified by orders of magnitude: the loss is heavy-tailed and its in-sample minimum is
optimistic. For d = N = 10, GD (K <= 3) and GD++ (K = 2) hold on fresh tasks (GD++
K = 2: 0.0916 in-sample, 0.0927 +- 0.0005 on 1M fresh tasks), but GD++ K = 3 searched
on 20k tasks scores 0.039 in-sample and 17 +- 12 on 1M fresh tasks; searched on 200k
tasks, 0.041 in-sample and 0.047 +- 0.006 fresh. For GD++ with K >= 3, search on a
large sample and quote the loss on fresh tasks.
"""

from dataclasses import dataclass
from itertools import permutations

import numpy as np
from numpy.polynomial import polynomial
from scipy.optimize import minimize
from scipy.stats import qmc

from headshare.tasks.regression.sampler import _split, mean_squared_loss

# GD++'s loss over (etas, gammas) has several local minima: line_search runs BFGS from
# many starts on a stratified subsample of this many tasks and polishes the best few.
_SCREENING_TASKS = 1000
_POLISHED_CANDIDATES = 3
_QUASI_RANDOM_STARTS_PER_STEP = 4
# Quasi-random starts: etas log-uniform in [eta*/2, 50 eta*], sorted (as at most minima
# seen), and gamma_k = eta_k exp(+-0.7), the neighbourhood in which the minima lie.
_ETA_RANGE = (0.5, 50.0)
_GAMMA_SPREAD = 0.7
# Screening only has to find basins; the polish converges (gradient ~ 1e-10, so the
# steps are accurate to ~1e-8 relative). Iteration caps are per parameter.
_SCREENING_GTOL, _SCREENING_ITERATIONS = 1e-5, 100
_POLISH_GTOL, _POLISH_ITERATIONS = 1e-10, 300


def _schedule(etas, gammas) -> tuple[np.ndarray, np.ndarray]:
    """Step sizes and input-transform strengths as float arrays; gammas default to 0."""
    etas = np.asarray(etas, dtype=np.float64)
    if etas.ndim != 1 or etas.size < 1:
        raise ValueError(f"etas must be 1-D with >= 1 step, got shape {etas.shape}")
    if not np.all(np.isfinite(etas)):
        raise ValueError(f"etas must be finite, got {etas}")
    if gammas is None:
        return etas, np.zeros_like(etas)
    gammas = np.asarray(gammas, dtype=np.float64)
    if gammas.shape != etas.shape:
        raise ValueError(
            f"gammas must have the same length as etas ({etas.size}), "
            f"got shape {gammas.shape}"
        )
    if not np.all(np.isfinite(gammas)):
        raise ValueError(f"gammas must be finite, got {gammas}")
    return etas, gammas


def _token_view(tokens: np.ndarray, queries: np.ndarray, etas, gammas) -> np.ndarray:
    """Predictions (n_tasks, n_queries) of the token-view recursion, one per query row.

    ``queries`` (n_tasks, n_queries, d) are carried like x_q: they never act as keys,
    so each evolves on its own and its prediction is linear in it.
    """
    etas, gammas = _schedule(etas, gammas)
    x, residual, _ = _split(tokens)
    n_context = x.shape[1]
    prediction = np.zeros(queries.shape[:2])
    for eta, gamma in zip(etas, gammas):
        # sum_i r_i x_i: the layer's value-weighted sum of keys, read by every token.
        pulled = np.einsum("tn,tnd->td", residual, x)
        update = (eta / n_context) * pulled
        new_residual = residual - np.einsum("tnd,td->tn", x, update)
        prediction = prediction + np.einsum("tqd,td->tq", queries, update)
        if gamma != 0.0:
            second_moment = np.einsum("tnd,tne->tde", x, x) / n_context  # symmetric
            x = x - gamma * np.einsum("tnd,tde->tne", x, second_moment)
            queries = queries - gamma * np.einsum(
                "tqd,tde->tqe", queries, second_moment
            )
        residual = new_residual
    return prediction


def multistep_prediction(tokens: np.ndarray, etas, gammas=None) -> np.ndarray:
    """Query predictions p^(K) (n_tasks,) of K-step GD, or of GD++ given ``gammas``."""
    _, _, x_query = _split(tokens)
    return _token_view(tokens, x_query[:, None, :], etas, gammas)[:, 0]


def multistep_weights(tokens: np.ndarray, etas, gammas=None) -> np.ndarray:
    """The linear predictor w_K (n_tasks, d), in the original input coordinates.

    The prediction is linear in x_q, so w_K is also d y_hat / d x_q, the input gradient
    a trained model is compared with; its i-th entry is the prediction for query e_i.
    """
    x, _, _ = _split(tokens)
    n_tasks, _, d = x.shape
    unit_queries = np.broadcast_to(np.eye(d), (n_tasks, d, d))
    return _token_view(tokens, unit_queries, etas, gammas)


def multistep_loss(tokens: np.ndarray, targets: np.ndarray, etas, gammas=None) -> float:
    """Mean over tasks of 0.5 (p^(K) - y_q)^2."""
    return mean_squared_loss(multistep_prediction(tokens, etas, gammas), targets)


@dataclass(frozen=True)
class _Spectrum:
    """Tasks in the eigenbasis of S: all that the loss of any (etas, gammas) needs."""

    eigenvalues: np.ndarray  # (n_tasks, d), lambda_j of S = X^T X / N, ascending
    loadings: np.ndarray  # (n_tasks, d), (U^T x_q)_j (U^T b)_j with b = X^T y / N
    targets: np.ndarray  # (n_tasks,)
    task_weights: np.ndarray  # (n_tasks,), sum 1; loss = sum_t weight_t 0.5 error_t^2

    @classmethod
    def from_tokens(cls, tokens: np.ndarray, targets: np.ndarray) -> "_Spectrum":
        x, y, x_query = _split(tokens)
        n_tasks, n_context, _ = x.shape
        s = np.einsum("tnd,tne->tde", x, x) / n_context
        eigenvalues, basis = np.linalg.eigh(s)
        b = np.einsum("tnd,tn->td", x, y) / n_context
        loadings = np.einsum("tdj,td->tj", basis, x_query) * np.einsum(
            "tdj,td->tj", basis, b
        )
        return cls(eigenvalues, loadings, targets, np.full(n_tasks, 1.0 / n_tasks))

    def screening_subsample(self, n_tasks: int) -> "_Spectrum":
        """About ``n_tasks`` tasks, weighted so that their loss estimates this one's.

        Large steps amplify the residual of the rare tasks whose top eigenvalue lies
        past the edge of the (transformed) spectrum, and those tasks dominate the loss,
        so an evenly spaced subsample misjudges it. Stratify instead: keep the quarter
        with the largest top eigenvalue at their own weight, and evenly spaced others,
        reweighted to stand for the rest.
        """
        if self.targets.size <= n_tasks:
            return self
        by_top_eigenvalue = np.argsort(self.eigenvalues[:, -1], kind="stable")[::-1]
        n_tail = n_tasks // 4
        rest = np.sort(by_top_eigenvalue[n_tail:])
        stride = max(1, rest.size // (n_tasks - n_tail))
        keep = np.concatenate(
            [by_top_eigenvalue[:n_tail], rest[::stride][: n_tasks - n_tail]]
        )
        weights = self.task_weights[keep].copy()
        weights[n_tail:] *= self.task_weights[rest].sum() / weights[n_tail:].sum()
        return _Spectrum(
            self.eigenvalues[keep], self.loadings[keep], self.targets[keep], weights
        )

    def loss_and_gradient(self, params: np.ndarray, n_steps: int):
        """Loss and gradient at params = (etas, gammas[:-1]) for GD++, etas for GD.

        Forward: the module docstring's spectral recursion. Backward: its adjoint, so
        the gradient costs about one more forward pass for any number of parameters.
        """
        etas = params[:n_steps]
        gammas = np.zeros(n_steps)
        gammas[: params.size - n_steps] = params[n_steps:]
        lam = self.eigenvalues
        phi, q = np.zeros_like(lam), np.ones_like(lam)
        tape = []
        for eta, gamma in zip(etas, gammas):
            u = lam * q  # eigenvalue of S^(k-1)
            residual = 1.0 - lam * phi
            shrink = 1.0 - gamma * u  # eigenvalue of A_k / M_{k-1}
            step = q * residual
            tape.append((q, u, residual, shrink, step))
            phi = phi + eta * step
            q = q * shrink * shrink
        error = np.einsum("tj,tj->t", self.loadings, phi) - self.targets
        phi_bar = self.loadings * (self.task_weights * error)[:, None]
        q_bar = np.zeros_like(lam)
        eta_grad, gamma_grad = np.zeros(n_steps), np.zeros(n_steps)
        # einsum rather than np.vdot: BLAS threads spin on a machine shared with others.
        for k in reversed(range(n_steps)):
            q, u, residual, shrink, step = tape[k]
            eta_grad[k] = np.einsum("tj,tj->", phi_bar, step)
            gamma_grad[k] = -2.0 * np.einsum("tj,tj->", q_bar * shrink, u * q)
            q_bar = q_bar * shrink * (shrink - 2.0 * gammas[k] * u)
            q_bar = q_bar + etas[k] * phi_bar * residual
            phi_bar = phi_bar - etas[k] * u * phi_bar
        gradient = np.concatenate([eta_grad, gamma_grad[: params.size - n_steps]])
        loss = 0.5 * float(np.einsum("t,t->", self.task_weights, error**2))
        return loss, gradient

    def loss(self, params: np.ndarray, n_steps: int) -> float:
        """The loss alone, +inf where the recursion overflows."""
        with np.errstate(over="ignore", invalid="ignore"):
            value = self.loss_and_gradient(params, n_steps)[0]
        return value if np.isfinite(value) else np.inf

    def minimise(self, start, n_steps: int, gtol: float, max_iter: int) -> np.ndarray:
        """A local minimum of the loss from ``start`` (BFGS with the exact gradient)."""
        with np.errstate(over="ignore", invalid="ignore"):
            result = minimize(
                self.loss_and_gradient,
                np.asarray(start, dtype=np.float64),
                args=(n_steps,),
                jac=True,
                method="BFGS",
                options={"gtol": gtol, "maxiter": max_iter},
            )
        return result.x


def _least_squares_gd_steps(tokens, targets, n_steps: int) -> np.ndarray:
    """Plain GD's best steps, ascending: reciprocal roots of a least-squares polynomial.

    The prediction is sum_m c_m x_q . S^m b (m < K), where
    1 - lambda sum_m c_m lambda^m = prod_k (1 - eta_k lambda); the loss is quadratic in
    c, so least squares finds its global minimum. Complex roots (not seen on this task)
    cannot be realised by real steps; their real parts are returned as a start for the
    caller's polish.
    """
    x, y, x_query = _split(tokens)
    n_context = x.shape[1]
    s = np.einsum("tnd,tne->tde", x, x) / n_context
    krylov = np.einsum("tnd,tn->td", x, y) / n_context  # S^m b
    features = []
    for _ in range(n_steps):
        features.append(np.einsum("td,td->t", x_query, krylov))
        krylov = np.einsum("tde,te->td", s, krylov)
    coefficients = np.linalg.lstsq(np.stack(features, axis=1), targets, rcond=None)[0]
    roots = polynomial.polyroots(np.concatenate([[1.0], -coefficients]))
    etas = np.zeros(n_steps)  # a vanishing top coefficient leaves steps of size 0
    etas[: roots.size] = np.sort(np.real(1.0 / roots))
    return etas


def _gd_plus_plus_starts(gd_etas: np.ndarray, eta_star: float) -> list[np.ndarray]:
    """Deterministic starts for GD++, each (etas, gammas[:-1]).

    GD's optimum in every order (all orders if K <= 3, else ascending and descending)
    with gammas 0; GD's optimum with tied gammas (gamma_k = eta_k makes the input
    transform M_k the residual operator prod_j (I - eta_j S^(j-1))); every eta at
    ``eta_star``, the one-step optimum, which sets the scale; and Halton points.
    """
    n_steps = gd_etas.size
    no_gammas = np.zeros(n_steps - 1)
    orders = permutations(gd_etas) if n_steps <= 3 else (gd_etas, gd_etas[::-1])
    starts = [np.concatenate([order, no_gammas]) for order in orders]
    starts.append(np.concatenate([gd_etas, gd_etas[:-1]]))
    starts.append(np.concatenate([np.full(n_steps, eta_star), no_gammas]))
    n_points = _QUASI_RANDOM_STARTS_PER_STEP * n_steps
    points = qmc.Halton(2 * n_steps - 1, scramble=False).random(1 + n_points)[1:]
    low, high = np.log(eta_star * np.array(_ETA_RANGE))
    for point in points:
        log_etas = np.sort(low + point[:n_steps] * (high - low))
        log_gammas = log_etas[:-1] + _GAMMA_SPREAD * (2.0 * point[n_steps:] - 1.0)
        starts.append(np.exp(np.concatenate([log_etas, log_gammas])))
    return starts


def _gd_plus_plus_search(
    spectrum: _Spectrum, gd_etas: np.ndarray, eta_star: float
) -> np.ndarray:
    """Best (etas, gammas[:-1]) found: screen the starts, polish the best few."""
    n_steps = gd_etas.size
    n_params = 2 * n_steps - 1
    screening = spectrum.screening_subsample(_SCREENING_TASKS)
    screened = [
        screening.minimise(
            start, n_steps, _SCREENING_GTOL, _SCREENING_ITERATIONS * n_params
        )
        for start in _gd_plus_plus_starts(gd_etas, eta_star)
    ]
    screened.sort(key=lambda params: spectrum.loss(params, n_steps))  # on all tasks
    distinct: list[np.ndarray] = []
    for params in screened:
        if not any(np.allclose(params, seen, rtol=1e-2) for seen in distinct):
            distinct.append(params)
    candidates = [np.concatenate([gd_etas, np.zeros(n_steps - 1)])] + [
        spectrum.minimise(params, n_steps, _POLISH_GTOL, _POLISH_ITERATIONS * n_params)
        for params in distinct[:_POLISHED_CANDIDATES]
    ]
    return min(candidates, key=lambda params: spectrum.loss(params, n_steps))


def line_search(
    tokens: np.ndarray, targets: np.ndarray, n_steps: int, plus: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Best (etas, gammas) on these tasks: minimum of the mean of 0.5 (p^(K) - y_q)^2.

    Plain GD (``plus`` False) is solved exactly by ``_least_squares_gd_steps`` and
    polished; its gammas are 0. (BFGS from equal steps would not do: GD's loss is
    symmetric in the etas, so BFGS stays on the diagonal and stops at the best constant
    step.) GD++ has several local minima: BFGS runs from deterministic starts on a
    stratified subsample, the best few by loss on all tasks are polished on all tasks,
    and the lowest loss wins. GD's optimum is a candidate, so GD++'s loss is never above
    GD's. gamma_K is returned as 0 (it has no effect). Deterministic: same tasks, same
    answer. The result is an in-sample minimum: see the module docstring before quoting
    its loss.
    """
    x, _, _ = _split(tokens)
    targets = np.asarray(targets, dtype=np.float64)
    if targets.shape != (x.shape[0],):
        raise ValueError(
            f"targets must have shape ({x.shape[0]},), got {targets.shape}"
        )
    is_count = isinstance(n_steps, (int, np.integer)) and not isinstance(n_steps, bool)
    if not is_count or n_steps < 1:
        raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r}")
    spectrum = _Spectrum.from_tokens(tokens, targets)
    gd_etas = _least_squares_gd_steps(tokens, targets, n_steps)
    polish_iterations = _POLISH_ITERATIONS * n_steps
    gd_etas = np.sort(
        spectrum.minimise(gd_etas, n_steps, _POLISH_GTOL, polish_iterations)
    )
    if not plus or n_steps == 1:
        return gd_etas, np.zeros(n_steps)
    eta_star = _least_squares_gd_steps(tokens, targets, 1)[0]
    if not eta_star > 0:  # only on a handful of degenerate tasks: any scale will do
        eta_star = 1.0 / max(float(np.mean(spectrum.eigenvalues)), np.finfo(float).tiny)
    best = _gd_plus_plus_search(spectrum, gd_etas, eta_star)
    return best[:n_steps], np.concatenate([best[n_steps:], [0.0]])
