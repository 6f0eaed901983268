"""The shape of one model (``ModelConfig``), importable without torch.

The workflow compares model shapes when it decides which cohorts train together (headshare.grouping), and
parsing the workflow must not import torch; headshare.model builds the modules from this.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

ATTENTION_KINDS = ("softmax", "linear")
MASKS = ("causal", "context")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """Shape of one model. Exactly one of ``vocab_size`` (token inputs) and ``input_dim``
    (continuous inputs, embedded by a learned affine map) is set.

    ``attention="linear"`` drops the softmax: the pattern is the masked, scaled score
    q.k / sqrt(d_head) divided by the number of keys the query can see (t + 1 at position t).
    That makes each position's output an average over its visible tokens; at the last position
    of a length-n_ctx input it equals 1/n_ctx, so the von Oswald construction (the query reads
    sum_j y_j x_j . x_q over context tokens) is one fixed rescaling of a sum.
    ``positional=False`` removes the positional embedding (the in-context regression task is
    permutation-invariant over its context).

    ``mask="context"`` replaces the causal mask: every position attends to every position but the
    last, the query, which is never a key (von Oswald et al.'s layout, where each layer updates the
    context tokens with the whole context, as a step of gradient descent does). Linear attention
    then divides by the number of context keys. A one-token input has no keys, and its attention
    writes nothing. At the query, a one-layer model sees the same keys under either mask, less itself.
    ``recurrent=True`` applies one block's weights ``n_layers`` times (a looped transformer); its
    hooks record the last application. ``mlp_first=True`` puts the block's MLP before attention.
    """

    n_ctx: int
    d_model: int
    n_heads: int
    d_head: int
    d_out: int
    vocab_size: int | None = None
    input_dim: int | None = None
    n_layers: int = 1
    attention: Literal["softmax", "linear"] = "softmax"
    mlp: bool = False
    d_mlp: int | None = None
    layernorm: bool = False
    positional: bool = True
    mask: Literal["causal", "context"] = "causal"
    recurrent: bool = False
    mlp_first: bool = False

    def __post_init__(self) -> None:
        if (self.vocab_size is None) == (self.input_dim is None):
            raise ValueError(
                "exactly one of vocab_size (token inputs) and input_dim (continuous inputs) "
                f"must be set, got vocab_size={self.vocab_size}, input_dim={self.input_dim}"
            )
        for name in ("n_ctx", "d_model", "n_heads", "d_head", "d_out", "n_layers"):
            require_positive_int(name, getattr(self, name))
        for name in ("vocab_size", "input_dim"):
            if getattr(self, name) is not None:
                require_positive_int(name, getattr(self, name))
        if self.attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {self.attention!r}")
        if self.mask not in MASKS:
            raise ValueError(f"mask must be one of {MASKS}, got {self.mask!r}")
        if self.mlp_first and not self.mlp:
            raise ValueError("mlp_first=True needs mlp=True")
        if self.d_mlp is not None:
            if not self.mlp:
                raise ValueError(f"d_mlp={self.d_mlp} is set but mlp=False")
            require_positive_int("d_mlp", self.d_mlp)

    @property
    def mlp_width(self) -> int:
        """Hidden width of the MLP: ``d_mlp``, or 4 * d_model when unset (GPT-2's ratio)."""
        return self.d_mlp if self.d_mlp is not None else 4 * self.d_model

    @property
    def init_std(self) -> float:
        """Std of the initial weights: TransformerLens's default 0.8 / sqrt(d_model), which
        keeps small models out of the vanishing-signal regime of GPT-2's fixed 0.02."""
        return 0.8 / math.sqrt(self.d_model)


def require_positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
