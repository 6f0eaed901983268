"""An ensemble of small causal transformers trained side by side, with TransformerLens-style hooks.

``EnsembleTransformer`` holds E independent models of one shape. Every parameter is stacked
along a leading member dim ([E, ...]) and the forward pass is a handful of batched matmuls,
so E models cost one kernel launch per op instead of E. Members never interact: member e's
outputs depend only on member e's parameters and inputs.

Attention is computed explicitly (scores -> causal mask -> softmax) rather than through
``F.scaled_dot_product_attention``, because interpretability needs the attention pattern. A one-layer
attention-only model on tokens (the hmm and readoff models) has another, cheaper route to the same logits
when no hook is active, as in training: every quantity it needs is a row or an entry of a small per-member
table over the vocab * n_ctx possible (token, position) inputs (``_tabulated_logits``).
Every activation site is an identity ``HookPoint`` with a stable dotted name that
``run_with_cache`` can record; the shapes below carry the extra member dim E in front of
TransformerLens's [batch, ...] layouts:

    hook_embed, hook_pos_embed                         [E, B, T, d_model]
    blocks.{l}.hook_resid_pre                          [E, B, T, d_model]
    blocks.{l}.attn.hook_q / hook_k / hook_v / hook_z  [E, B, T, H, d_head]
    blocks.{l}.attn.hook_attn_scores / hook_pattern    [E, B, H, T_q, T_k]
    blocks.{l}.attn.hook_result                        [E, B, T, H, d_model]
    blocks.{l}.hook_attn_out                           [E, B, T, d_model]
    blocks.{l}.hook_resid_mid, hook_mlp_out            [E, B, T, d_model]   (MLP only)
    blocks.{l}.hook_resid_post                         [E, B, T, d_model]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from headshare.model_config import ModelConfig, require_positive_int


def _stacked(n_members: int, *shape: int) -> nn.Parameter:
    """An uninitialised [n_members, *shape] parameter; values come from ``from_members``."""
    return nn.Parameter(torch.empty(n_members, *shape))


def _affine(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Per-member ``x @ weight + bias`` for x [E, ..., d_in], weight [E, d_in, d_out]."""
    n_members, d_in = x.shape[0], x.shape[-1]
    flat = torch.baddbmm(bias.unsqueeze(1), x.reshape(n_members, -1, d_in), weight)
    return flat.view(*x.shape[:-1], weight.shape[-1])


def _gather_rows(table: Tensor, rows: Tensor) -> Tensor:
    """Per-member row lookup: table [E, R, d], rows [E, ...] ints -> [E, ..., d].

    ``index_select`` on the flattened [E * R, d] table: its backward is one ``index_add``,
    faster on CPU than ``F.embedding``'s.
    """
    E, R, d = table.shape
    flat_rows = rows + torch.arange(E, device=rows.device).view(E, *[1] * (rows.dim() - 1)) * R
    return torch.index_select(table.reshape(E * R, d), 0, flat_rows.reshape(-1)).view(*rows.shape, d)


@functools.cache
def _pair_visibility(T: int, R: int, attention: str, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Causal mask of a (key row, query row) table [R, R], rows token * T + position: added to the scores
    (0 or -inf) under softmax, multiplied into them (the 1 / (t + 1) average over visible keys, or 0) under
    linear attention. Cached: it depends on the shapes alone."""
    position = torch.arange(R, device=device) % T
    visible = position.view(R, 1) <= position.view(1, R)
    if attention == "softmax":
        return torch.zeros(visible.shape, dtype=dtype, device=device).masked_fill(~visible, float("-inf"))
    return visible.to(dtype) / (position + 1).to(dtype).view(1, R)


class _ClassFirstAffine(torch.autograd.Function):
    """Per-member ``x @ W + b`` returned class-first: x [E, N, d], W [E, d, C] -> [E, C, N].

    With C (d_out) small, BLAS runs the transposed products W^T x^T and g x about twice as
    fast as x W and x^T g. Autograd's own backward of W^T x^T would return the input gradient
    transposed, costing a full-size copy; this backward writes every gradient contiguously.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, W: Tensor, b: Tensor) -> Tensor:
        return torch.baddbmm(b.unsqueeze(-1), W.transpose(1, 2), x.transpose(1, 2))

    @staticmethod
    def setup_context(ctx, inputs: tuple[Tensor, Tensor, Tensor], output: Tensor) -> None:
        x, W, _ = inputs
        ctx.save_for_backward(x, W)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor]:  # grad [E, C, N]
        x, W = ctx.saved_tensors
        grad_x = torch.bmm(grad.transpose(1, 2), W.transpose(1, 2))  # [E, N, d]
        grad_W = torch.bmm(grad, x).transpose(1, 2).contiguous()  # [E, d, C]
        return grad_x, grad_W, grad.sum(-1)


class HookPoint(nn.Module):
    """Identity on the forward pass; a function set in ``fn`` sees (and may replace) the value."""

    def __init__(self) -> None:
        super().__init__()
        self.fn: Callable[[Tensor], Tensor | None] | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.fn is None:
            return x
        replaced = self.fn(x)
        return x if replaced is None else replaced


class LayerNorm(nn.Module):
    """LayerNorm over d_model with per-member gain ``w`` and bias ``b``."""

    def __init__(self, cfg: ModelConfig, n_members: int) -> None:
        super().__init__()
        self.w = _stacked(n_members, cfg.d_model)
        self.b = _stacked(n_members, cfg.d_model)

    def forward(self, x: Tensor) -> Tensor:  # [E, B, T, d_model]
        shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
        normed = F.layer_norm(x, x.shape[-1:])
        return torch.addcmul(self.b.view(shape), normed, self.w.view(shape))


class Attention(nn.Module):
    """Causal multi-head attention with one fused QKV projection.

    ``W_QKV`` is [E, d_model, 3 * H * d_head] with its last dim ordered (q|k|v, head, d_head);
    ``W_Q``, ``W_K``, ``W_V`` are [E, d_model, H, d_head] views of it for analysis.
    """

    def __init__(self, cfg: ModelConfig, n_members: int) -> None:
        super().__init__()
        self.cfg = cfg
        H, dh, d = cfg.n_heads, cfg.d_head, cfg.d_model
        self.W_QKV = _stacked(n_members, d, 3 * H * dh)
        self.b_QKV = _stacked(n_members, 3 * H * dh)
        self.W_O = _stacked(n_members, H, dh, d)
        self.b_O = _stacked(n_members, d)
        if cfg.attention == "softmax":
            # Added to the scores: 0 where visible, -inf where the key lies in the future.
            future = torch.ones(cfg.n_ctx, cfg.n_ctx, dtype=torch.bool).triu(1)
            self.register_buffer(
                "mask", torch.zeros(cfg.n_ctx, cfg.n_ctx).masked_fill(future, float("-inf")), persistent=False
            )
        else:
            # Multiplies the scores (1 where visible, 0 in the future), then divides them: query position t
            # averages over its t + 1 visible keys. Integers, exact in any float dtype the model is cast to.
            self.register_buffer("visible", torch.ones(cfg.n_ctx, cfg.n_ctx).tril(), persistent=False)
            self.register_buffer("n_visible", torch.arange(1.0, cfg.n_ctx + 1).view(-1, 1), persistent=False)
        self.hook_q = HookPoint()  # [E, B, T, H, d_head]
        self.hook_k = HookPoint()  # [E, B, T, H, d_head]
        self.hook_v = HookPoint()  # [E, B, T, H, d_head]
        self.hook_attn_scores = HookPoint()  # [E, B, H, T_q, T_k], q.k / sqrt(d_head), pre-mask
        self.hook_pattern = HookPoint()  # [E, B, H, T_q, T_k]
        self.hook_z = HookPoint()  # [E, B, T, H, d_head]
        self.hook_result = HookPoint()  # [E, B, T, H, d_model], each head's write to the stream

    def _qkv_view(self, index: int) -> Tensor:
        E, d = self.W_QKV.shape[:2]
        return self.W_QKV.view(E, d, 3, self.cfg.n_heads, self.cfg.d_head)[:, :, index]

    @property
    def W_Q(self) -> Tensor:
        return self._qkv_view(0)

    @property
    def W_K(self) -> Tensor:
        return self._qkv_view(1)

    @property
    def W_V(self) -> Tensor:
        return self._qkv_view(2)

    def _pattern(self, scores: Tensor, T: int, queries: Tensor | None = None) -> Tensor:
        """Attention weights [E, B, H, T_q, T] from the scores, under the config's mask; the query rows are
        positions ``queries`` (all T if None)."""
        if self.cfg.mask == "context":
            # The keys are the first T - 1 positions; the query's own column gets weight 0.
            n_keys = T - 1
            if n_keys == 0:
                return torch.zeros_like(scores)
            context = scores[..., :n_keys]
            weights = torch.softmax(context, dim=-1) if self.cfg.attention == "softmax" else context / n_keys
            return F.pad(weights, (0, 1))
        if self.cfg.attention == "softmax":
            # Normalised over the keys in key-major layout ([..., T_k, T_q], what ``forward`` computes):
            # on a CPU, softmax over 10 contiguous elements runs several times slower than across rows.
            mask = self.mask[:T, :T] if queries is None else self.mask[queries, :T]
            return torch.softmax(scores.transpose(-1, -2) + mask.T, dim=-2).transpose(-1, -2)
        if queries is None:
            return scores * self.visible[:T, :T] / self.n_visible[:T]
        return scores * self.visible[queries, :T] / self.n_visible[queries]

    def forward(
        self, x: Tensor, head_mask: Tensor | None = None, z_fill: Tensor | None = None, queries: Tensor | None = None
    ) -> Tensor:
        """x [E, B, T, d_model] -> attention output [E, B, T_q, d_model] at query positions ``queries``
        (all T if None).

        ``head_mask`` [E, H] scales each head's z (hence its output, which is linear in z);
        ``z_fill`` [E, T, H, d_head] is added in proportion (1 - head_mask), so a head masked
        to 0 writes exactly what ``z_fill`` would have written (mean ablation).
        """
        E, B, T, _ = x.shape
        H, dh = self.cfg.n_heads, self.cfg.d_head
        # unbind (not three slices): its backward writes the fused gradient in one pass.
        q, k, v = _affine(x, self.W_QKV, self.b_QKV).view(E, B, T, 3, H, dh).unbind(3)
        q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)
        if queries is not None:
            q = q.index_select(2, queries)
            z_fill = None if z_fill is None else z_fill.index_select(1, queries)
        # [E, B, T, H, dh] -> [E, B, H, T, dh] so each (member, sequence, head) is one small matmul.
        q, k, v = (t.transpose(2, 3) for t in (q, k, v))
        # Computed key-major, [E, B, H, T_k, T_q], and seen by the hooks as its transpose (a view).
        scores = self.hook_attn_scores((k @ q.transpose(-1, -2) / math.sqrt(dh)).transpose(-1, -2))
        pattern = self.hook_pattern(self._pattern(scores, T, queries))
        z = (pattern @ v).transpose(2, 3)  # [E, B, T_q, H, dh]
        if head_mask is not None:
            keep = head_mask.view(E, 1, 1, H, 1).to(z.dtype)
            z = z * keep if z_fill is None else z * keep + (1 - keep) * z_fill.unsqueeze(1)
        z = self.hook_z(z)
        if self.hook_result.fn is not None:
            result = torch.einsum("ebthd,ehdm->ebthm", z, self.W_O)
            return self.hook_result(result).sum(3) + self.b_O.view(E, 1, 1, -1)
        return _affine(z.flatten(3), self.W_O.view(E, H * dh, -1), self.b_O)


class MLP(nn.Module):
    """Two-layer GELU MLP applied per position."""

    def __init__(self, cfg: ModelConfig, n_members: int) -> None:
        super().__init__()
        self.W_in = _stacked(n_members, cfg.d_model, cfg.mlp_width)
        self.b_in = _stacked(n_members, cfg.mlp_width)
        self.W_out = _stacked(n_members, cfg.mlp_width, cfg.d_model)
        self.b_out = _stacked(n_members, cfg.d_model)

    def forward(self, x: Tensor) -> Tensor:  # [E, B, T, d_model]
        return _affine(F.gelu(_affine(x, self.W_in, self.b_in)), self.W_out, self.b_out)


class Block(nn.Module):
    """Pre-LN residual block: attention, then (optionally) an MLP; the MLP first when ``cfg.mlp_first``."""

    def __init__(self, cfg: ModelConfig, n_members: int) -> None:
        super().__init__()
        self.ln1 = LayerNorm(cfg, n_members) if cfg.layernorm else nn.Identity()
        self.attn = Attention(cfg, n_members)
        self.hook_resid_pre = HookPoint()  # [E, B, T, d_model]
        self.hook_attn_out = HookPoint()  # [E, B, T, d_model]
        self.hook_resid_post = HookPoint()  # [E, B, T, d_model]
        if cfg.mlp:
            self.ln2 = LayerNorm(cfg, n_members) if cfg.layernorm else nn.Identity()
            self.mlp = MLP(cfg, n_members)
            self.hook_resid_mid = HookPoint()  # [E, B, T, d_model]
            self.hook_mlp_out = HookPoint()  # [E, B, T, d_model]

    def forward(
        self, x: Tensor, head_mask: Tensor | None = None, z_fill: Tensor | None = None, queries: Tensor | None = None
    ) -> Tensor:
        """Residual stream [E, B, T, d_model] -> [E, B, T_q, d_model] at positions ``queries`` (all if None)."""
        x = self.hook_resid_pre(x)

        def attend(x: Tensor) -> Tensor:
            at_queries = x if queries is None else x.index_select(2, queries)
            return at_queries + self.hook_attn_out(self.attn(self.ln1(x), head_mask, z_fill, queries))

        if not hasattr(self, "mlp"):
            return self.hook_resid_post(attend(x))
        if self.attn.cfg.mlp_first:
            return self.hook_resid_post(attend(self.hook_resid_mid(x + self.hook_mlp_out(self.mlp(self.ln2(x))))))
        x = self.hook_resid_mid(attend(x))
        return self.hook_resid_post(x + self.hook_mlp_out(self.mlp(self.ln2(x))))


class EnsembleTransformer(nn.Module):
    """E independent causal transformers of one ``ModelConfig``, parameters stacked as [E, ...].

    Build one with ``from_seeds`` (fresh init) or ``from_members`` (restack saved members);
    the constructor alone leaves the parameters uninitialised.
    """

    def __init__(self, cfg: ModelConfig, n_members: int) -> None:
        super().__init__()
        require_positive_int("n_members", n_members)
        self.cfg = cfg
        self.n_members = n_members
        if cfg.vocab_size is not None:
            self.W_E = _stacked(n_members, cfg.vocab_size, cfg.d_model)
        else:
            self.W_E = _stacked(n_members, cfg.input_dim, cfg.d_model)
            self.b_E = _stacked(n_members, cfg.d_model)
        if cfg.positional:
            self.W_pos = _stacked(n_members, cfg.n_ctx, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg, n_members) for _ in range(1 if cfg.recurrent else cfg.n_layers))
        self.ln_final = LayerNorm(cfg, n_members) if cfg.layernorm else nn.Identity()
        self.W_U = _stacked(n_members, cfg.d_model, cfg.d_out)
        self.b_U = _stacked(n_members, cfg.d_out)
        self.hook_embed = HookPoint()  # [E, B, T, d_model]
        self.hook_pos_embed = HookPoint()  # [E, B, T, d_model]

    @classmethod
    def from_seeds(cls, cfg: ModelConfig, seeds: Sequence[int]) -> EnsembleTransformer:
        """Fresh ensemble; member i is initialised from ``torch.Generator`` seeded with
        ``seeds[i]`` alone, so its weights do not depend on which cohort it trains in."""
        return cls.from_members(cfg, [init_member_state(cfg, seed) for seed in seeds])

    @classmethod
    def from_members(cls, cfg: ModelConfig, members: Sequence[dict[str, Tensor]]) -> EnsembleTransformer:
        """Stack per-member state dicts (as from ``member_state_dict``) into one ensemble,
        keeping their dtype and device."""
        if not members:
            raise ValueError("from_members needs at least one member state dict, got none")
        first = next(iter(members[0].values()))
        model = cls(cfg, len(members)).to(dtype=first.dtype, device=first.device)
        stacked = {name: torch.stack([m[name] for m in members]) for name in members[0]}
        model.load_state_dict(stacked)
        return model

    def member_state_dict(self, index: int) -> dict[str, Tensor]:
        """Member ``index``'s parameters as plain tensors without the member dim (copies)."""
        if not 0 <= index < self.n_members:
            raise ValueError(f"member index must lie in 0..{self.n_members - 1}, got {index}")
        return {name: p.detach()[index].clone() for name, p in self.state_dict().items()}

    def forward(
        self,
        inputs: Tensor,
        *,
        head_mask: Tensor | None = None,
        z_fill: Tensor | None = None,
        queries: Tensor | None = None,
    ) -> Tensor:
        """inputs: LongTensor [E, B, T] of tokens, or float [E, B, T, input_dim].

        head_mask: optional [E, n_layers, n_heads] multiplier on each head's output.
        z_fill: optional [E, n_layers, T, n_heads, d_head] written in place of the masked part
        of each head's z (e.g. ``hook_z`` averaged over a reference batch: mean ablation).
        queries: optional 1-D positions at which the logits are wanted; the last layer then attends from
        those positions only (a loss read at the last position needs one query per sequence, not T).
        Returns logits [E, B, T, d_out], or [E, B, len(queries), d_out].
        """
        self._check_inputs(inputs)
        T = inputs.shape[2]
        self._check_ablation(head_mask, z_fill, T)
        self._check_queries(queries, T)
        if any(point.fn is not None for point in self.hook_points().values()):
            logits = self._layers(inputs, head_mask, z_fill)  # hooks see every position
        elif self._tabulable(inputs, z_fill):
            logits = self._tabulated_logits(inputs, head_mask)  # the tables cost as much for one query as for all
        else:
            return self._layers(inputs, head_mask, z_fill, queries)
        return logits if queries is None else logits.index_select(2, queries)

    def last_logits(self, inputs: Tensor) -> Tensor:
        """Logits [E, B, d_out] at the last position only (a query read out at the end of its context)."""
        last = torch.tensor([inputs.shape[2] - 1], device=inputs.device)
        return self(inputs, queries=last)[:, :, 0]

    def _layers(
        self, inputs: Tensor, head_mask: Tensor | None, z_fill: Tensor | None, queries: Tensor | None = None
    ) -> Tensor:
        """The layer-by-layer forward pass; the last layer at positions ``queries`` (all if None)."""
        x = self._embed(inputs)
        for layer in range(self.cfg.n_layers):
            block = self.blocks[0 if self.cfg.recurrent else layer]
            x = block(
                x,
                None if head_mask is None else head_mask[:, layer],
                None if z_fill is None else z_fill[:, layer],
                queries if layer == self.cfg.n_layers - 1 else None,
            )
        return self._unembed(self.ln_final(x))

    def _embed(self, inputs: Tensor) -> Tensor:
        """Token (or affine input) embedding plus positional embedding: [E, B, T, d_model]."""
        cfg, T = self.cfg, inputs.shape[2]
        pos = self.W_pos[:, None, :T] if cfg.positional else None  # [E, 1, T, d_model]
        if cfg.input_dim is not None:
            x = self.hook_embed(_affine(inputs, self.W_E, self.b_E))
        elif pos is not None and self.hook_embed.fn is None and self.hook_pos_embed.fn is None:
            # Unhooked: gather from a per-member table of every (token, position) sum, which
            # saves a full-size add forward and a reduction over the batch backward.
            table = self.W_E.unsqueeze(2) + pos  # [E, vocab, T, d_model]
            return _gather_rows(table.flatten(1, 2), inputs * T + torch.arange(T, device=inputs.device))
        else:
            x = self.hook_embed(_gather_rows(self.W_E, inputs))
        return x if pos is None else x + self.hook_pos_embed(pos.expand_as(x))

    def _tabulable(self, inputs: Tensor, z_fill: Tensor | None) -> bool:
        """Whether ``_tabulated_logits`` computes this forward pass (when no hook is active): a one-layer,
        attention-only model on tokens under the causal mask, no mean ablation, and a table of (key, query)
        scores at most twice the size of the batch's own scores (measured on a CPU: the tables cost more than
        they save from about 1.3x to 2.5x, depending on d_model)."""
        cfg = self.cfg
        if (
            cfg.vocab_size is None
            or not cfg.positional
            or cfg.n_layers != 1
            or cfg.mlp
            or cfg.layernorm
            or cfg.mask != "causal"
            or z_fill is not None
        ):
            return False
        B, T = inputs.shape[1:]
        return (cfg.vocab_size * T) ** 2 <= 2 * B * T * T

    def _tabulated_logits(self, tokens: Tensor, head_mask: Tensor | None) -> Tensor:
        """Logits [E, B, T, d_out] of a one-layer attention-only model, gathered from per-member tables.

        The residual stream at position t is one of vocab * T rows, W_E[token] + W_pos[t]. So every score is
        an entry of a table over (key row, query row) pairs, every key's write to the logits (v W_O W_U) a row
        of a table over rows, and so is the direct path x W_U. Each sequence then only gathers from the
        tables: the same function as the layer-by-layer pass (up to rounding) with no d_model-wide
        activation: at the default hmm shapes a CPU training step ran 1.3x (1 head) to 1.8x (3 heads) faster.
        """
        E, B, T = tokens.shape
        H, dh, C = self.cfg.n_heads, self.cfg.d_head, self.cfg.d_out
        attn = self.blocks[0].attn
        embedded = (self.W_E.unsqueeze(2) + self.W_pos[:, None, :T]).flatten(1, 2)  # [E, R, d_model]
        R = embedded.shape[1]  # row = token * T + position
        q, k, v = _affine(embedded, attn.W_QKV, attn.b_QKV).view(E, R, 3, H, dh).unbind(2)
        scores = torch.einsum("ekhd,eqhd->ehkq", k, q)  # [E, H, key row, query row]
        visibility = _pair_visibility(T, R, self.cfg.attention, scores.dtype, scores.device)
        if self.cfg.attention == "softmax":
            scores = torch.add(visibility, scores, alpha=1 / math.sqrt(dh))
        else:
            scores = scores * (visibility / math.sqrt(dh))
        writes = torch.einsum("erhd,ehdc->erhc", v, attn.W_O @ self.W_U.unsqueeze(1))  # [E, R, H, d_out]
        if head_mask is not None:
            writes = writes * head_mask[:, 0].view(E, 1, H, 1).to(writes.dtype)
        direct = _affine(embedded, self.W_U, (attn.b_O.unsqueeze(1) @ self.W_U).squeeze(1) + self.b_U)

        rows = torch.add(torch.arange(T, device=tokens.device), tokens, alpha=T)  # [E, B, T]
        # Key-major [E, H, T_k, B, T_q]: softmax then normalises over an outer dim, vectorised along the
        # contiguous (batch, query) dims, several times faster on a CPU than over a short last dim.
        key_rows = rows.transpose(1, 2).contiguous().unsqueeze(-1)  # [E, T_k, B, 1]
        pairs = torch.add(rows.unsqueeze(1), key_rows, alpha=R)  # [E, T_k, B, T_q] into a member's R * R
        # Gathered per member along the last dim, every head with the same index: on a CPU its backward (a
        # scatter) runs in parallel, and a flat gather of H-wide rows was 3-4x slower for 3 heads.
        pair_scores = torch.gather(scores.reshape(E, H, R * R), 2, pairs.view(E, 1, -1).expand(E, H, -1))
        pair_scores = pair_scores.view(E, H, T, B, T)
        pattern = torch.softmax(pair_scores, dim=2) if self.cfg.attention == "softmax" else pair_scores
        by_key = pattern.permute(0, 3, 2, 1, 4).reshape(E * B, T * H, T)  # [(key, head), query] per sequence
        # One gather (and one scatter backward) for both per-row tables: the keys' writes and the direct path.
        row_table = torch.cat([writes.reshape(E * R, H * C), direct.reshape(E * R, C)], dim=1)
        member_rows = rows + torch.arange(0, E * R, R, device=tokens.device).view(E, 1, 1)  # into [E * R]
        key_writes, direct_rows = row_table.index_select(0, member_rows.view(-1)).split([H * C, C], dim=1)
        key_writes = key_writes.reshape(E * B, T * H, C)
        return torch.baddbmm(direct_rows.view(E * B, T, C), by_key.transpose(1, 2), key_writes).view(E, B, T, C)

    def _check_inputs(self, inputs: Tensor) -> None:
        cfg, E = self.cfg, self.n_members
        continuous = cfg.input_dim is not None
        expected = "[E, B, T, input_dim] float" if continuous else "[E, B, T] integer tokens"
        n_dims = 4 if continuous else 3
        if (
            inputs.dim() != n_dims
            or inputs.shape[0] != E
            or inputs.is_floating_point() != continuous
            or (continuous and inputs.shape[-1] != cfg.input_dim)
        ):
            raise ValueError(
                f"inputs must be {expected} with E={E}"
                + (f", input_dim={cfg.input_dim}" if continuous else "")
                + f"; got {inputs.dtype} of shape {tuple(inputs.shape)}"
            )
        if not 1 <= inputs.shape[2] <= cfg.n_ctx:
            raise ValueError(f"sequence length must lie in 1..{cfg.n_ctx}, got {inputs.shape[2]}")
        # Out-of-range tokens would silently read another member's rows of the flat table.
        # Checked in eager mode only: under torch.compile the data-dependent branch would
        # split the graph.
        if continuous or torch.compiler.is_compiling() or inputs.numel() == 0:
            return
        low, high = (int(value) for value in torch.aminmax(inputs))
        if low < 0 or high >= cfg.vocab_size:
            raise ValueError(f"tokens must lie in 0..{cfg.vocab_size - 1}, got values in {low}..{high}")

    def _unembed(self, x: Tensor) -> Tensor:
        """Logits [E, B, T, d_out]: a view of an [E, d_out, B, T] tensor, the layout
        ``F.cross_entropy`` takes after ``permute(0, 3, 1, 2)``."""
        E, B, T, d = x.shape
        flat = _ClassFirstAffine.apply(x.reshape(E, B * T, d), self.W_U, self.b_U)
        return flat.view(E, -1, B, T).permute(0, 2, 3, 1)

    @staticmethod
    def _check_queries(queries: Tensor | None, T: int) -> None:
        if queries is None:
            return
        if queries.dim() != 1 or queries.is_floating_point() or not len(queries):
            raise ValueError(
                f"queries must be a non-empty 1-D tensor of positions, got {queries.dtype} {tuple(queries.shape)}"
            )
        low, high = (int(value) for value in torch.aminmax(queries))
        if low < 0 or high >= T:
            raise ValueError(f"queries must lie in 0..{T - 1}, got values in {low}..{high}")

    def _check_ablation(self, head_mask: Tensor | None, z_fill: Tensor | None, T: int) -> None:
        cfg, E = self.cfg, self.n_members
        expected_mask = (E, cfg.n_layers, cfg.n_heads)
        if head_mask is not None and tuple(head_mask.shape) != expected_mask:
            raise ValueError(f"head_mask must have shape {expected_mask}, got {tuple(head_mask.shape)}")
        if z_fill is not None:
            if head_mask is None:
                raise ValueError("z_fill needs a head_mask saying which heads to replace")
            expected_fill = (E, cfg.n_layers, T, cfg.n_heads, cfg.d_head)
            if tuple(z_fill.shape) != expected_fill:
                raise ValueError(f"z_fill must have shape {expected_fill}, got {tuple(z_fill.shape)}")

    def hook_points(self) -> dict[str, HookPoint]:
        """All hook points by their stable dotted names."""
        return {name: m for name, m in self.named_modules() if isinstance(m, HookPoint)}

    def run_with_cache(
        self,
        inputs: Tensor,
        names: Iterable[str] | None = None,
        **forward_kwargs: Tensor | None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Forward pass that also returns the (detached) activations at ``names`` (all if None)."""
        points = self.hook_points()
        wanted = list(points) if names is None else list(names)
        unknown = sorted(set(wanted) - set(points))
        if unknown:
            raise ValueError(f"unknown hook names {unknown}; available: {sorted(points)}")
        cache: dict[str, Tensor] = {}

        def recorder(name: str) -> Callable[[Tensor], None]:
            def record(x: Tensor) -> None:
                cache[name] = x.detach()

            return record

        try:
            for name in wanted:
                points[name].fn = recorder(name)
            logits = self(inputs, **forward_kwargs)
        finally:
            for name in wanted:
                points[name].fn = None
        return logits, cache


def init_member_state(cfg: ModelConfig, seed: int) -> dict[str, Tensor]:
    """One member's initial parameters, drawn from ``torch.Generator().manual_seed(seed)``.

    Weights ~ N(0, cfg.init_std^2) in parameter-name order, biases 0, LayerNorm gains 1.
    """
    generator = torch.Generator().manual_seed(seed)
    skeleton = EnsembleTransformer(cfg, 1)
    gains = {
        f"{prefix}.w" if prefix else "w"
        for prefix, module in skeleton.named_modules()
        if isinstance(module, LayerNorm)
    }
    state = {}
    for name, param in skeleton.named_parameters():
        shape = param.shape[1:]
        if name in gains:
            state[name] = torch.ones(shape)
        elif name.rsplit(".", 1)[-1].startswith("b"):
            state[name] = torch.zeros(shape)
        else:
            state[name] = torch.empty(shape).normal_(0.0, cfg.init_std, generator=generator)
    return state


def with_heads(state: dict[str, Tensor], cfg: ModelConfig, n_heads: int) -> dict[str, Tensor]:
    """One member's parameters (shape ``cfg``) with ``n_heads`` heads per layer: heads beyond ``cfg.n_heads``
    are added as zeros, heads beyond ``n_heads`` dropped (copies).

    A zero head is inert: its values, hence its output and every gradient reaching its parameters, are
    exactly zero, and AdamW leaves zero parameters at zero. So a member padded with zero heads trains as it
    would alone, which is what lets members of different head counts share one ensemble
    (headshare.grouping).
    """
    require_positive_int("n_heads", n_heads)
    kept = min(cfg.n_heads, n_heads)
    resized = {}
    for name, value in state.items():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("W_QKV", "b_QKV"):  # last dim ordered (q|k|v, head, d_head)
            by_head = value.reshape(*value.shape[:-1], 3, cfg.n_heads, cfg.d_head)
            grown = by_head.new_zeros(*value.shape[:-1], 3, n_heads, cfg.d_head)
            grown[..., :kept, :] = by_head[..., :kept, :]
            resized[name] = grown.reshape(*value.shape[:-1], 3 * n_heads * cfg.d_head)
        elif leaf == "W_O":  # [H, d_head, d_model]
            grown = value.new_zeros(n_heads, *value.shape[1:])
            grown[:kept] = value[:kept]
            resized[name] = grown
        else:
            resized[name] = value.clone()
    return resized
