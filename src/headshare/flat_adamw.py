"""AdamW over flat buffers: ``torch.optim.AdamW``'s update, as a handful of whole-model ops.

torch's AdamW updates parameter by parameter: on a CPU its foreach path is a loop over the parameters, and
with per-parameter step tensors most of its time on these models (about ten small stacked parameters per
ensemble) went to dispatch and scalar conversions, not arithmetic (170-280 us of a 2.7 ms step at the
default hmm shape). Here every parameter, its gradient and its two moments are views into flat buffers, so
that a step is a few ops over the whole model, however many parameters it has. The update is elementwise
and in torch's order (decoupled decay, lerp, second moment, bias corrections), so it is the same update.
The state dict has AdamW's format (``step``, ``exp_avg``, ``exp_avg_sq`` per parameter).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor


class FlatAdamW(torch.optim.Optimizer):
    """AdamW whose parameters, gradients and moments live in flat buffers (see the module docstring).

    Constructing it rebinds every parameter's data and gradient to views of the buffers, so the model must be
    on its device already. Gradients are accumulated in place, and ``zero_grad`` zeroes the buffer: every
    parameter takes a (possibly zero) update at every step, as it does when every parameter has a gradient.
    """

    def __init__(
        self,
        groups: Iterable[dict[str, Any]],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(list(groups), {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": 0.0})
        params = [p for group in self.param_groups for p in group["params"]]
        if len({(p.dtype, p.device) for p in params}) != 1:
            raise ValueError("FlatAdamW needs every parameter on one device, in one dtype")
        if len({(group["betas"], group["eps"]) for group in self.param_groups}) != 1:
            raise ValueError("FlatAdamW needs the same betas and eps in every parameter group")
        total = sum(p.numel() for p in params)
        self.flat_params = params[0].new_empty(total)
        self.flat_grads = torch.zeros_like(self.flat_params)
        self._exp_avg = torch.zeros_like(self.flat_params)
        self._exp_avg_sq = torch.zeros_like(self.flat_params)
        self._steps = 0
        self._segments: list[slice] = []
        offset = 0
        for group in self.param_groups:
            start = offset
            for p in group["params"]:
                part = slice(offset, offset + p.numel())
                self.flat_params[part].copy_(p.detach().reshape(-1))
                p.data = self.flat_params[part].view_as(p)
                p.grad = self.flat_grads[part].view_as(p)
                offset = part.stop
            self._segments.append(slice(start, offset))
        self._bind_state()

    def _views(self) -> Iterable[tuple[Tensor, slice]]:
        offset = 0
        for group in self.param_groups:
            for p in group["params"]:
                yield p, slice(offset, offset + p.numel())
                offset += p.numel()

    def _bind_state(self) -> None:
        self._step_state = torch.tensor(float(self._steps))  # AdamW's per-parameter step, one tensor shared
        for p, part in self._views():
            self.state[p] = {
                "step": self._step_state,
                "exp_avg": self._exp_avg[part].view_as(p),
                "exp_avg_sq": self._exp_avg_sq[part].view_as(p),
            }

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the gradient buffer in place (never None: the parameters' gradients must stay its views)."""
        self.flat_grads.zero_()

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        if closure is not None:
            raise ValueError("FlatAdamW takes no closure")
        self._steps += 1
        beta1, beta2 = self.param_groups[0]["betas"]
        eps = self.param_groups[0]["eps"]
        for group, part in zip(self.param_groups, self._segments):
            if group["weight_decay"]:
                self.flat_params[part].mul_(1 - group["lr"] * group["weight_decay"])
        self._exp_avg.lerp_(self.flat_grads, 1 - beta1)
        self._exp_avg_sq.mul_(beta2).addcmul_(self.flat_grads, self.flat_grads, value=1 - beta2)
        correction1 = 1 - beta1**self._steps
        correction2 = 1 - beta2**self._steps
        denominator = self._exp_avg_sq.sqrt().div_(correction2**0.5).add_(eps)
        for group, part in zip(self.param_groups, self._segments):
            step_size = (group["lr"] / correction1) * -1
            self.flat_params[part].addcdiv_(self._exp_avg[part], denominator[part], value=step_size)
        self._step_state.fill_(self._steps)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        loaded = [self.state[p] for p, _ in self._views()]
        if len({float(state["step"]) for state in loaded}) != 1:
            raise ValueError("FlatAdamW loads one step count for every parameter, got several")
        for (p, part), state in zip(self._views(), loaded):
            self._exp_avg[part].copy_(state["exp_avg"].reshape(-1))
            self._exp_avg_sq[part].copy_(state["exp_avg_sq"].reshape(-1))
        self._steps = int(float(loaded[0]["step"]))
        self._bind_state()
