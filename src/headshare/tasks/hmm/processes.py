"""Hidden Markov processes with token-labelled transition matrices: Mess3, a 2-state analogue, products.

Convention: ``T[k, i, j] = P(emit token k, move to state j | in state i)``. A belief ``eta`` over states
is updated after seeing token ``k`` as ``normalise(eta @ T[k])`` (the mixed-state presentation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

ROW_SUM_TOLERANCE = 1e-9
# Eigenvalues this close to 1 count as 1 when deciding whether the stationary distribution is unique.
UNIT_EIGENVALUE_TOLERANCE = 1e-10


class ProcessError(ValueError):
    """A process parameter or matrix that does not define a valid hidden Markov process."""


@dataclass(frozen=True, eq=False)
class HMM:
    """A hidden Markov process given by its token-labelled transition matrices (read-only copy)."""

    transitions: np.ndarray
    name: str
    # T[i, j, k]: the same matrices with the token last, so gathering by token keeps memory contiguous.
    _by_token: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        matrices = np.array(self.transitions, dtype=np.float64)
        if matrices.ndim != 3 or matrices.shape[1] != matrices.shape[2] or 0 in matrices.shape:
            raise ProcessError(
                f"{self.name}: transitions must have shape (n_tokens, n_states, n_states), got {matrices.shape}"
            )
        if not np.all(np.isfinite(matrices)) or matrices.min() < 0:
            raise ProcessError(f"{self.name}: transitions must be finite and >= 0, min is {matrices.min()}")
        row_sums = matrices.sum(axis=(0, 2))
        if not np.allclose(row_sums, 1.0, atol=ROW_SUM_TOLERANCE, rtol=0):
            raise ProcessError(
                f"{self.name}: sum over tokens and next states must be 1 for every state, got {row_sums}"
            )
        matrices.setflags(write=False)
        object.__setattr__(self, "transitions", matrices)
        object.__setattr__(self, "_by_token", np.ascontiguousarray(matrices.transpose(1, 2, 0)))

    @property
    def n_tokens(self) -> int:
        return self.transitions.shape[0]

    @property
    def n_states(self) -> int:
        return self.transitions.shape[1]

    def net_transition(self) -> np.ndarray:
        """State-to-state transition matrix, tokens summed out; its eigenvalues set the memory of the process."""
        return self.transitions.sum(axis=0)

    def stationary(self) -> np.ndarray:
        """Stationary state distribution.

        When eigenvalue 1 is degenerate (e.g. lambda = 1, where states never change) every mixture of the
        invariant sets is stationary; a doubly stochastic process then gets the symmetric choice, uniform.
        """
        net = self.net_transition()
        n_unit = int(np.sum(np.abs(np.linalg.eigvals(net) - 1.0) < UNIT_EIGENVALUE_TOLERANCE))
        if n_unit > 1:
            if np.allclose(net.sum(axis=0), 1.0, atol=ROW_SUM_TOLERANCE, rtol=0):
                return np.full(self.n_states, 1.0 / self.n_states)
            raise ProcessError(
                f"{self.name}: eigenvalue 1 has multiplicity {n_unit}, "
                "so the stationary distribution is not unique"
            )
        # pi (P - I) = 0 with sum(pi) = 1, solved as one overdetermined linear system.
        system = np.vstack([net.T - np.eye(self.n_states), np.ones((1, self.n_states))])
        target = np.zeros(self.n_states + 1)
        target[-1] = 1.0
        pi = np.linalg.lstsq(system, target, rcond=None)[0]
        pi = np.clip(pi, 0.0, None)
        return pi / pi.sum()

    def emission(self) -> np.ndarray:
        """``E[i, k] = P(next token k | current state i)``: a belief's next-token distribution is ``eta @ E``."""
        return self.transitions.sum(axis=2).T

    def predictive(self, beliefs: np.ndarray) -> np.ndarray:
        """Next-token distribution ``(..., n_tokens)`` for beliefs ``(..., n_states)``."""
        return np.asarray(beliefs, dtype=np.float64) @ self.emission()

    def update(self, beliefs: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Posterior beliefs after observing ``tokens`` (shape ``beliefs.shape[:-1]``, broadcastable)."""
        beliefs = np.asarray(beliefs, dtype=np.float64)
        tokens = np.asarray(tokens)
        if not np.issubdtype(tokens.dtype, np.integer):
            raise ProcessError(f"{self.name}: tokens must be integers, got dtype {tokens.dtype}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.n_tokens):
            raise ProcessError(
                f"{self.name}: tokens must lie in [0, {self.n_tokens - 1}], got range "
                f"[{tokens.min()}, {tokens.max()}]"
            )
        # State axis first: the einsum then streams over contiguous batch axes, several times faster for
        # small state spaces; the result is a view whose state axis is last again.
        states_first = np.moveaxis(beliefs, -1, 0)
        unnormalised = np.einsum("i...,ij...->j...", states_first, np.take(self._by_token, tokens, axis=2))
        total = unnormalised.sum(axis=0)
        if total.size and total.min() <= 0:
            raise ProcessError(f"{self.name}: an observed token has probability 0 under its belief")
        unnormalised /= total
        return np.moveaxis(unnormalised, 0, -1)


def _check_parameter(name: str, value: float, low: float, high: float, reason: str = "") -> float:
    if not math.isfinite(value) or not low <= value <= high:
        raise ProcessError(f"{name}={value!r} is outside the allowed range [{low:g}, {high:g}]{reason}")
    return float(value)


def _emit_at_destination(net: np.ndarray, fidelity: float) -> np.ndarray:
    """``T[k, i, j] = net[i, j] * P(k | j)`` where the destination j emits its own label with prob ``fidelity``."""
    n = net.shape[0]
    other = (1.0 - fidelity) / (n - 1)
    emit = np.full((n, n), other)  # emit[j, k] = P(k | j)
    np.fill_diagonal(emit, fidelity)
    return np.einsum("ij,jk->kij", net, emit)


MESS3_BOUNDS = (-0.5, 1.0)
TWO_STATE_BOUNDS = (-1.0, 1.0)
FIDELITY_BOUNDS = (0.0, 1.0)


def mess3(lam: float, a: float) -> HMM:
    """Mess3 with degenerate eigenvalue ``lam`` (x = (1 - lam)/3) and emission fidelity ``a``."""
    low, high = MESS3_BOUNDS
    if math.isfinite(lam) and lam < low:
        raise ProcessError(
            f"Mess3 lambda={lam!r} is outside the allowed range [{low:g}, {high:g}]: the trace of the 3x3 net "
            f"transition, 1 + 2*lambda, is a sum of probabilities, so lambda >= -1/2. "
            f"Use the 2-state process ('two_state'), whose eigenvalue reaches -1."
        )
    lam = _check_parameter("Mess3 lambda", lam, low, high, " (x = (1 - lambda)/3 must be >= 0)")
    a = _check_parameter("Mess3 emission fidelity a", a, *FIDELITY_BOUNDS)
    x = (1.0 - lam) / 3.0
    net = np.full((3, 3), x)
    np.fill_diagonal(net, 1.0 - 2.0 * x)
    return HMM(_emit_at_destination(net, a), name=f"mess3(lambda={lam:g}, a={a:g})")


def two_state(lam: float, a: float) -> HMM:
    """2 states, 2 tokens: flip probability p = (1 - lam)/2, destination j emits token j with prob ``a``."""
    lam = _check_parameter("two_state lambda", lam, *TWO_STATE_BOUNDS)
    a = _check_parameter("two_state emission fidelity a", a, *FIDELITY_BOUNDS)
    p = (1.0 - lam) / 2.0
    net = np.array([[1.0 - p, p], [p, 1.0 - p]])
    return HMM(_emit_at_destination(net, a), name=f"two_state(lambda={lam:g}, a={a:g})")


def product(p1: HMM, p2: HMM) -> HMM:
    """Two independent processes as one stream: token ``k1*n2 + k2``, state ``s1*m2 + s2``."""
    joint = np.einsum("aij,bkl->abikjl", p1.transitions, p2.transitions)
    n, m = p1.n_tokens * p2.n_tokens, p1.n_states * p2.n_states
    return HMM(joint.reshape(n, m, m), name=f"{p1.name} x {p2.name}")


_BUILDERS = {"mess3": (mess3, MESS3_BOUNDS), "two_state": (two_state, TWO_STATE_BOUNDS)}


def _lookup(kind: str):
    if kind not in _BUILDERS:
        raise ProcessError(f"process kind {kind!r} is unknown; allowed kinds: {sorted(_BUILDERS)}")
    return _BUILDERS[kind]


def eigenvalue_bounds(kind: str) -> tuple[float, float]:
    """Closed range of the non-trivial eigenvalue ``lambda`` that ``kind`` can realise."""
    return _lookup(kind)[1]


def build_process(kind: str, lam: float, a: float) -> HMM:
    """The process named by a config entry: ``kind`` in {'mess3', 'two_state'}."""
    return _lookup(kind)[0](lam, a)
