"""EnsembleTransformer against a per-head, per-position reference written from the equations."""

import math

import pytest
import torch
import torch.nn.functional as F

from headshare.model import EnsembleTransformer, ModelConfig

TOKEN_CFG = dict(vocab_size=5, n_ctx=6, d_model=12, n_heads=3, d_head=2, d_out=5)
CONTINUOUS_CFG = dict(input_dim=4, n_ctx=6, d_model=12, n_heads=2, d_head=3, d_out=1)
VARIANTS = [
    dict(TOKEN_CFG, attention="softmax"),
    dict(TOKEN_CFG, attention="linear"),
    dict(TOKEN_CFG, attention="softmax", mlp=True, d_mlp=7, layernorm=True, n_layers=2),
    dict(CONTINUOUS_CFG, attention="linear"),
    dict(CONTINUOUS_CFG, attention="softmax", positional=False, mlp=True, layernorm=True),
]
CONTEXT_VARIANTS = [
    dict(CONTINUOUS_CFG, attention="linear", positional=False, mask="context", n_layers=2),
    dict(CONTINUOUS_CFG, attention="softmax", positional=False, mask="context", layernorm=True),
    dict(CONTINUOUS_CFG, attention="linear", positional=False, mask="context", n_layers=3, recurrent=True),
    dict(CONTINUOUS_CFG, attention="linear", positional=False, mask="context", mlp=True, mlp_first=True, d_mlp=5),
]


def make_inputs(cfg: ModelConfig, n_members: int, batch: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if cfg.vocab_size is not None:
        return torch.randint(0, cfg.vocab_size, (n_members, batch, cfg.n_ctx), generator=g)
    return torch.randn(n_members, batch, cfg.n_ctx, cfg.input_dim, generator=g, dtype=torch.float64)


def reference_forward(cfg: ModelConfig, s: dict, inputs: torch.Tensor) -> torch.Tensor:
    """One model, written head by head and query position by query position, no mask tensors."""
    H, dh, d = cfg.n_heads, cfg.d_head, cfg.d_model

    def ln(x, prefix):
        if not cfg.layernorm:
            return x
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + 1e-5) * s[prefix + ".w"] + s[prefix + ".b"]

    if cfg.vocab_size is not None:
        x = s["W_E"][inputs]
    else:
        x = inputs @ s["W_E"] + s["b_E"]
    B, T = x.shape[:2]
    if cfg.positional:
        x = x + s["W_pos"][:T]
    def attention(x, p):
        h_in = ln(x, p + "ln1")
        W = s[p + "attn.W_QKV"].view(d, 3, H, dh)
        b = s[p + "attn.b_QKV"].view(3, H, dh)
        out = s[p + "attn.b_O"].expand(B, T, d).clone()
        for h in range(H):
            q, k, v = (h_in @ W[:, i, h] + b[i, h] for i in range(3))
            for t in range(T):
                keys = t + 1 if cfg.mask == "causal" else T - 1  # the context mask: all but the query
                if keys == 0:
                    continue
                scores = (k[:, :keys] * q[:, t : t + 1]).sum(-1) / math.sqrt(dh)  # [B, keys]
                weights = scores.softmax(-1) if cfg.attention == "softmax" else scores / keys
                z = (weights[..., None] * v[:, :keys]).sum(1)
                out[:, t] += z @ s[p + "attn.W_O"][h]
        return x + out

    def mlp(x, p):
        hidden = F.gelu(ln(x, p + "ln2") @ s[p + "mlp.W_in"] + s[p + "mlp.b_in"])
        return x + hidden @ s[p + "mlp.W_out"] + s[p + "mlp.b_out"]

    for layer in range(cfg.n_layers):
        p = "blocks.0." if cfg.recurrent else f"blocks.{layer}."
        if cfg.mlp and cfg.mlp_first:
            x = attention(mlp(x, p), p)
        else:
            x = attention(x, p)
            x = mlp(x, p) if cfg.mlp else x
    return ln(x, "ln_final") @ s["W_U"] + s["b_U"]


def randomised(cfg: ModelConfig, seeds) -> EnsembleTransformer:
    """Ensemble in float64 with every parameter (biases and gains too) made non-trivial."""
    model = EnsembleTransformer.from_seeds(cfg, seeds).double()
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


@pytest.mark.parametrize("kwargs", VARIANTS + CONTEXT_VARIANTS)
def test_forward_matches_reference(kwargs):
    cfg = ModelConfig(**kwargs)
    model = randomised(cfg, [3, 4])
    inputs = make_inputs(cfg, 2, 5)
    logits = model(inputs)
    hooked_logits, _ = model.run_with_cache(inputs)
    for e in range(2):
        expected = reference_forward(cfg, model.member_state_dict(e), inputs[e])
        torch.testing.assert_close(logits[e], expected, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(hooked_logits[e], expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kwargs", VARIANTS)
def test_causal(kwargs):
    cfg = ModelConfig(**kwargs)
    model = randomised(cfg, [0, 1])
    inputs = make_inputs(cfg, 2, 4)
    changed = inputs.clone()
    t = cfg.n_ctx - 2
    if cfg.vocab_size is not None:
        changed[:, :, t] = (changed[:, :, t] + 1) % cfg.vocab_size
    else:
        changed[:, :, t] += 1.0
    before, after = model(inputs), model(changed)
    torch.testing.assert_close(before[:, :, :t], after[:, :, :t], rtol=0, atol=1e-12)
    assert (before[:, :, t:] - after[:, :, t:]).abs().amin(dim=(0, 1, 3)).gt(1e-6).all()


@pytest.mark.parametrize("kwargs", CONTEXT_VARIANTS)
def test_context_mask_hides_the_query_and_ignores_context_order(kwargs):
    """Under the context mask no position reads the last (query) token, and without positions the query's
    output is the same for any order of the context."""
    cfg = ModelConfig(**kwargs)
    model = randomised(cfg, [0, 1])
    inputs = make_inputs(cfg, 2, 4)
    changed = inputs.clone()
    changed[:, :, -1] += 1.0
    before, after = model(inputs), model(changed)
    torch.testing.assert_close(before[:, :, :-1], after[:, :, :-1], rtol=0, atol=1e-12)
    assert (before[:, :, -1] - after[:, :, -1]).abs().gt(1e-6).all()
    order = torch.tensor([3, 0, 4, 2, 1, 5])
    permuted = model(inputs[:, :, order])
    torch.testing.assert_close(permuted[:, :, -1], before[:, :, -1], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(permuted[:, :, :-1], before[:, :, order[:-1]], rtol=1e-10, atol=1e-12)


def test_one_token_under_the_context_mask_gets_no_attention():
    cfg = ModelConfig(**CONTEXT_VARIANTS[0])
    model = randomised(cfg, [0])
    query = make_inputs(cfg, 1, 3)[:, :, -1:]
    silenced = randomised(cfg, [0])
    with torch.no_grad():
        for block in silenced.blocks:
            block.attn.W_O.zero_()
    torch.testing.assert_close(model(query), silenced(query), rtol=0, atol=1e-12)


def test_recurrent_model_shares_one_block():
    recurrent = ModelConfig(**CONTEXT_VARIANTS[2])
    assert len(EnsembleTransformer.from_seeds(recurrent, [0]).blocks) == 1
    stacked = ModelConfig(**{**CONTEXT_VARIANTS[2], "recurrent": False})
    assert len(EnsembleTransformer.from_seeds(stacked, [0]).blocks) == 3


@pytest.mark.parametrize("kwargs", [VARIANTS[0], VARIANTS[3]])
def test_ensemble_losses_and_gradients_equal_separate_models(kwargs):
    cfg = ModelConfig(**kwargs)
    seeds = [5, 6, 7]
    ensemble = randomised(cfg, seeds)
    separate = [EnsembleTransformer.from_members(cfg, [ensemble.member_state_dict(e)]) for e in range(3)]
    inputs = make_inputs(cfg, 3, 8)
    g = torch.Generator().manual_seed(1)
    if cfg.vocab_size is not None:
        targets = torch.randint(0, cfg.d_out, (3, 8, cfg.n_ctx), generator=g)

        def loss_fn(logits, y):
            return F.cross_entropy(logits.reshape(-1, cfg.d_out), y.reshape(-1))

    else:
        targets = torch.randn(3, 8, generator=g, dtype=torch.float64)

        def loss_fn(logits, y):
            return 0.5 * ((logits[:, -1, 0] - y) ** 2).mean()

    logits = ensemble(inputs)
    losses = torch.stack([loss_fn(logits[e], targets[e]) for e in range(3)])
    losses.sum().backward()
    for e, model in enumerate(separate):
        loss = loss_fn(model(inputs[e : e + 1])[0], targets[e])
        loss.backward()
        torch.testing.assert_close(losses[e], loss, rtol=1e-12, atol=1e-12)
        for (name, p_ens), (_, p_one) in zip(ensemble.named_parameters(), model.named_parameters()):
            torch.testing.assert_close(p_ens.grad[e], p_one.grad[0], rtol=1e-10, atol=1e-12, msg=name)


def test_initial_weights_depend_only_on_own_seed():
    cfg = ModelConfig(**VARIANTS[2])
    cohort = EnsembleTransformer.from_seeds(cfg, [11, 42, 7])
    alone = EnsembleTransformer.from_seeds(cfg, [42])
    for name, value in alone.member_state_dict(0).items():
        assert torch.equal(cohort.member_state_dict(1)[name], value), name
    different = EnsembleTransformer.from_seeds(cfg, [43]).member_state_dict(0)
    assert not torch.equal(different["W_E"], alone.member_state_dict(0)["W_E"])


def test_initial_weights_follow_the_stated_distribution():
    cfg = ModelConfig(vocab_size=50, n_ctx=10, d_model=64, n_heads=4, d_head=16, d_out=50, layernorm=True)
    state = EnsembleTransformer.from_seeds(cfg, [0]).member_state_dict(0)
    assert state["W_E"].std().item() == pytest.approx(0.8 / 8, rel=0.05)
    assert torch.all(state["blocks.0.attn.b_QKV"] == 0) and torch.all(state["blocks.0.ln1.w"] == 1)


def test_member_state_round_trip():
    cfg = ModelConfig(**VARIANTS[2])
    model = randomised(cfg, [1, 2])
    rebuilt = EnsembleTransformer.from_members(cfg, [model.member_state_dict(1), model.member_state_dict(0)])
    for name, p in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[name], p.flip(0)), name
    assert "mask" not in "".join(model.state_dict())


@pytest.mark.parametrize("kwargs", [VARIANTS[0], VARIANTS[2], VARIANTS[3]])
def test_hook_shapes_and_meaning(kwargs):
    cfg = ModelConfig(**kwargs)
    E, B, T, H, dh, d = 2, 3, cfg.n_ctx, cfg.n_heads, cfg.d_head, cfg.d_model
    model = randomised(cfg, [0, 1])
    _, cache = model.run_with_cache(make_inputs(cfg, E, B))
    expected = {"hook_embed": (E, B, T, d)}
    if cfg.positional:
        expected["hook_pos_embed"] = (E, B, T, d)
    for layer in range(cfg.n_layers):
        p = f"blocks.{layer}."
        for name in ("hook_resid_pre", "hook_attn_out", "hook_resid_post"):
            expected[p + name] = (E, B, T, d)
        for name in ("hook_q", "hook_k", "hook_v", "hook_z"):
            expected[p + "attn." + name] = (E, B, T, H, dh)
        expected[p + "attn.hook_attn_scores"] = expected[p + "attn.hook_pattern"] = (E, B, H, T, T)
        expected[p + "attn.hook_result"] = (E, B, T, H, d)
        if cfg.mlp:
            expected[p + "hook_resid_mid"] = expected[p + "hook_mlp_out"] = (E, B, T, d)
    assert {k: tuple(v.shape) for k, v in cache.items()} == expected

    attn = model.blocks[0].attn
    pattern, scores = cache["blocks.0.attn.hook_pattern"], cache["blocks.0.attn.hook_attn_scores"]
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    assert torch.all(pattern[..., future] == 0)
    if cfg.attention == "softmax":
        torch.testing.assert_close(pattern.sum(-1), torch.ones(E, B, H, T, dtype=pattern.dtype))
    else:
        counts = torch.arange(1, T + 1, dtype=scores.dtype).view(T, 1)
        torch.testing.assert_close(pattern, scores.masked_fill(future, 0) / counts)
    q, k = cache["blocks.0.attn.hook_q"], cache["blocks.0.attn.hook_k"]
    torch.testing.assert_close(scores, torch.einsum("ebqhd,ebkhd->ebhqk", q, k) / math.sqrt(dh))
    result = cache["blocks.0.attn.hook_result"]
    torch.testing.assert_close(
        result.sum(3) + attn.b_O.detach().view(E, 1, 1, d), cache["blocks.0.hook_attn_out"]
    )


def test_head_mask_zero_removes_exactly_that_head():
    cfg = ModelConfig(**VARIANTS[0])
    model = randomised(cfg, [0, 1])
    inputs = make_inputs(cfg, 2, 4)
    names = ["blocks.0.attn.hook_result", "blocks.0.hook_attn_out"]
    full_logits, full = model.run_with_cache(inputs, names)
    mask = torch.ones(2, 1, cfg.n_heads, dtype=torch.float64)
    mask[0, 0, 1] = 0.0  # member 0 loses head 1; member 1 keeps every head
    masked_logits, masked = model.run_with_cache(inputs, names, head_mask=mask)
    out, result = full["blocks.0.hook_attn_out"], full["blocks.0.attn.hook_result"]
    torch.testing.assert_close(masked["blocks.0.hook_attn_out"][0], out[0] - result[0, :, :, 1])
    assert torch.equal(masked["blocks.0.hook_attn_out"][1], out[1])
    assert torch.equal(masked_logits[1], full_logits[1])
    assert not torch.allclose(masked_logits[0], full_logits[0])


def test_mean_ablation_writes_the_fill_value():
    cfg = ModelConfig(**VARIANTS[2])
    model = randomised(cfg, [0, 1])
    inputs = make_inputs(cfg, 2, 4)
    _, cache = model.run_with_cache(inputs)
    z_mean = torch.stack([cache[f"blocks.{l}.attn.hook_z"].mean(1) for l in range(cfg.n_layers)], 1)
    mask = torch.ones(2, cfg.n_layers, cfg.n_heads, dtype=torch.float64)
    mask[:, 0, 2] = 0.0
    _, ablated = model.run_with_cache(inputs, ["blocks.0.hook_attn_out"], head_mask=mask, z_fill=z_mean)
    W_O = model.blocks[0].attn.W_O.detach()  # [E, H, dh, d]
    fill_out = torch.einsum("etd,edm->etm", z_mean[:, 0, :, 2], W_O[:, 2])
    expected = (
        cache["blocks.0.hook_attn_out"] - cache["blocks.0.attn.hook_result"][:, :, :, 2] + fill_out[:, None]
    )
    torch.testing.assert_close(ablated["blocks.0.hook_attn_out"], expected)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(TOKEN_CFG, input_dim=3), "exactly one of vocab_size"),
        (dict(TOKEN_CFG, n_heads=0), "n_heads"),
        (dict(TOKEN_CFG, d_head=2.5), "d_head"),
        (dict(TOKEN_CFG, attention="relu"), "attention"),
        (dict(TOKEN_CFG, d_mlp=8), "mlp=False"),
        (dict(TOKEN_CFG, mask="bidirectional"), "mask must be one of"),
        (dict(TOKEN_CFG, mlp_first=True), "mlp_first=True needs mlp=True"),
    ],
)
def test_config_validation(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        ModelConfig(**kwargs)


def test_bad_inputs_are_rejected():
    model = EnsembleTransformer.from_seeds(ModelConfig(**TOKEN_CFG), [0, 1])
    with pytest.raises(ValueError, match="E=2"):
        model(torch.zeros(3, 1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="tokens must lie in 0..4"):
        model(torch.full((2, 1, 4), 5))
    with pytest.raises(ValueError, match="got values in -1..0"):
        model(torch.tensor([[[0, -1]], [[0, 0]]]))
    with pytest.raises(ValueError, match="sequence length"):
        model(torch.zeros(2, 1, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="head_mask"):
        model(torch.zeros(2, 1, 4, dtype=torch.long), head_mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match="unknown hook"):
        model.run_with_cache(torch.zeros(2, 1, 4, dtype=torch.long), ["blocks.0.hook_nope"])


def test_gradients_match_finite_differences():
    cfg = ModelConfig(input_dim=3, n_ctx=4, d_model=6, n_heads=2, d_head=2, d_out=2, mlp=True, layernorm=True)
    model = randomised(cfg, [0, 1])
    inputs = make_inputs(cfg, 2, 2).requires_grad_()
    params = dict(model.named_parameters())
    names = ["W_U", "b_U", "blocks.0.attn.W_QKV", "W_E"]

    def logits(x, *values):
        return torch.func.functional_call(model, dict(zip(names, values)), (x,))

    values = tuple(params[n].detach().requires_grad_() for n in names)
    assert torch.autograd.gradcheck(logits, (inputs, *values), fast_mode=True)


TABULABLE = [
    dict(TOKEN_CFG, attention="softmax"),
    dict(TOKEN_CFG, attention="linear"),
    dict(TOKEN_CFG, attention="softmax", n_heads=1),
]
TABLE_BATCH = 16  # (vocab 5 x 6 positions)^2 = 900 table entries <= 2 x 16 x 6^2: the forward pass gathers from tables


@pytest.mark.parametrize("kwargs", TABULABLE)
@pytest.mark.parametrize("length", [6, 4])
def test_tabulated_forward_matches_reference(kwargs, length):
    """A one-layer attention-only token model with a batch large enough is computed from (key, query) tables;
    it must still be the reference function, for full and for shorter sequences."""
    cfg = ModelConfig(**kwargs)
    model = randomised(cfg, [3, 4])
    inputs = make_inputs(cfg, 2, TABLE_BATCH)[:, :, :length]
    assert model._tabulable(inputs, None)
    logits = model(inputs)
    for e in range(2):
        expected = reference_forward(cfg, model.member_state_dict(e), inputs[e])
        torch.testing.assert_close(logits[e], expected, rtol=1e-10, atol=1e-10)
    last = torch.tensor([length - 1])
    torch.testing.assert_close(model(inputs, queries=last), logits[:, :, -1:], rtol=0, atol=0)


@pytest.mark.parametrize("kwargs", TABULABLE)
def test_tabulated_gradients_match_finite_differences(kwargs):
    cfg = ModelConfig(**kwargs)
    model = randomised(cfg, [0, 1])
    inputs = make_inputs(cfg, 2, TABLE_BATCH)
    assert model._tabulable(inputs, None)
    names = [name for name, _ in model.named_parameters()]
    values = tuple(p.detach().requires_grad_() for p in model.parameters())

    def logits(*values):
        return torch.func.functional_call(model, dict(zip(names, values)), (inputs,))

    assert torch.autograd.gradcheck(logits, values, fast_mode=True)


def test_tabulated_head_mask_equals_the_layer_by_layer_mask():
    cfg = ModelConfig(**TABULABLE[0])
    model = randomised(cfg, [0, 1])
    inputs = make_inputs(cfg, 2, TABLE_BATCH)
    mask = torch.tensor([[[1.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]]], dtype=torch.float64)
    layer_by_layer, _ = model.run_with_cache(inputs, ["hook_embed"], head_mask=mask)  # a hook: no tables
    torch.testing.assert_close(model(inputs, head_mask=mask), layer_by_layer, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "change",
    [dict(mlp=True), dict(layernorm=True), dict(n_layers=2), dict(mask="context"), dict(positional=False)],
)
def test_tables_only_for_one_layer_attention_only_causal_models(change):
    cfg = ModelConfig(**{**TABULABLE[0], **change})
    model = EnsembleTransformer.from_seeds(cfg, [0])
    assert not model._tabulable(make_inputs(cfg, 1, TABLE_BATCH), None)


def test_tables_not_larger_than_twice_the_batch_scores():
    cfg = ModelConfig(**TABULABLE[0])
    model = EnsembleTransformer.from_seeds(cfg, [0])
    assert model._tabulable(make_inputs(cfg, 1, 13), None)  # 900 <= 2 x 13 x 36
    assert not model._tabulable(make_inputs(cfg, 1, 12), None)  # 900 > 2 x 12 x 36


@pytest.mark.parametrize("kwargs", VARIANTS + CONTEXT_VARIANTS)
@pytest.mark.parametrize("positions", [[5], [0, 3]])
def test_logits_at_queries_are_the_full_logits_there(kwargs, positions):
    """The last layer attends from the query positions only: the logits there, and the gradients of a loss
    that reads them, must be those of the full forward pass."""
    cfg = ModelConfig(**kwargs)
    model = randomised(cfg, [3, 4])
    inputs = make_inputs(cfg, 2, 5)
    queries = torch.tensor(positions)
    full = model(inputs)
    full.index_select(2, queries).square().sum().backward()
    expected_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    at_queries = model(inputs, queries=queries)
    torch.testing.assert_close(at_queries, full.index_select(2, queries), rtol=1e-12, atol=1e-12)
    at_queries.square().sum().backward()
    for p, expected in zip(model.parameters(), expected_grads):
        torch.testing.assert_close(p.grad, expected, rtol=1e-10, atol=1e-12)
    hooked, _ = model.run_with_cache(inputs, ["hook_embed"], queries=queries)
    torch.testing.assert_close(hooked, at_queries.detach(), rtol=1e-12, atol=1e-12)


def test_queries_with_head_mask_and_mean_ablation():
    cfg = ModelConfig(**VARIANTS[2])  # two layers: the first at every position, the last at the queries
    model = randomised(cfg, [0, 1])
    inputs = make_inputs(cfg, 2, 4)
    g = torch.Generator().manual_seed(2)
    mask = (torch.rand(2, cfg.n_layers, cfg.n_heads, generator=g) > 0.5).double()
    fill = torch.randn(2, cfg.n_layers, cfg.n_ctx, cfg.n_heads, cfg.d_head, generator=g, dtype=torch.float64)
    queries = torch.tensor([1, 5])
    full = model(inputs, head_mask=mask, z_fill=fill)
    at_queries = model(inputs, head_mask=mask, z_fill=fill, queries=queries)
    torch.testing.assert_close(at_queries, full.index_select(2, queries), rtol=1e-12, atol=1e-12)


def test_bad_queries_are_rejected():
    cfg = ModelConfig(**TOKEN_CFG)
    model = EnsembleTransformer.from_seeds(cfg, [0])
    inputs = make_inputs(cfg, 1, 2)
    with pytest.raises(ValueError, match="queries must lie in 0..5, got values in 0..6"):
        model(inputs, queries=torch.tensor([0, 6]))
    with pytest.raises(ValueError, match="non-empty 1-D"):
        model(inputs, queries=torch.tensor([[0]]))
