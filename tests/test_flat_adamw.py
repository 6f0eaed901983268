"""FlatAdamW against torch.optim.AdamW, the reference it must reproduce."""

from __future__ import annotations

import pytest
import torch

from headshare.flat_adamw import FlatAdamW

SHAPES = [(3, 4, 5), (3, 7), (3, 2, 2, 3), (3, 1)]


def parameters(seed: int) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in SHAPES]


def groups(params: list[torch.nn.Parameter]) -> list[dict]:
    """Decay on the >= 3-dim parameters only, as training.make_optimizer groups them."""
    return [
        {"params": [p for p in params if p.dim() >= 3], "weight_decay": 0.1},
        {"params": [p for p in params if p.dim() < 3], "weight_decay": 0.0},
    ]


def run(optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter], steps: range) -> None:
    """Steps with a changing learning rate and gradients of a fixed quadratic-plus-noise loss."""
    for step in steps:
        for group in optimizer.param_groups:
            group["lr"] = 1e-2 / (1 + step)
        optimizer.zero_grad(set_to_none=True)
        noise = torch.Generator().manual_seed(1000 + step)
        loss = sum(((p - 0.5) ** 2 * torch.rand(p.shape, generator=noise)).sum() for p in params)
        loss.backward()
        optimizer.step()


def test_steps_match_torch_adamw():
    reference, flat = parameters(0), parameters(0)
    run(torch.optim.AdamW(groups(reference), lr=1e-2, betas=(0.9, 0.99)), reference, range(25))
    run(FlatAdamW(groups(flat), lr=1e-2, betas=(0.9, 0.99)), flat, range(25))
    for expected, got in zip(reference, flat):
        torch.testing.assert_close(got, expected)


def test_parameters_and_gradients_are_views_of_the_flat_buffers():
    params = parameters(1)
    optimizer = FlatAdamW(groups(params), lr=1e-3)
    run(optimizer, params, range(2))
    assert sum(p.numel() for p in params) == optimizer.flat_params.numel()
    for p in params:
        assert p.untyped_storage().data_ptr() == optimizer.flat_params.untyped_storage().data_ptr()
        assert p.grad.untyped_storage().data_ptr() == optimizer.flat_grads.untyped_storage().data_ptr()


@pytest.mark.parametrize("saved_by", [torch.optim.AdamW, FlatAdamW])
def test_a_resumed_run_ends_where_an_uninterrupted_one_ends(saved_by: type[torch.optim.Optimizer]):
    """Resuming from a state dict, FlatAdamW's own or torch AdamW's (same format), changes nothing."""
    whole = parameters(2)
    run(FlatAdamW(groups(whole), lr=1e-2), whole, range(12))

    first = parameters(2)
    optimizer = saved_by(groups(first), lr=1e-2)
    run(optimizer, first, range(5))
    state = optimizer.state_dict()
    resumed = [torch.nn.Parameter(p.detach().clone()) for p in first]
    optimizer = FlatAdamW(groups(resumed), lr=1e-2)
    optimizer.load_state_dict(state)
    run(optimizer, resumed, range(5, 12))
    for expected, got in zip(whole, resumed):
        torch.testing.assert_close(got, expected)


def test_parameters_of_several_dtypes_are_refused():
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))]
    with pytest.raises(ValueError, match="one device, in one dtype"):
        FlatAdamW([{"params": params}], lr=1e-3)
