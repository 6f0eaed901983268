"""One ensemble of members of different head counts (a training family, headshare.grouping).

Members with fewer heads are zero-padded to the widest (:func:`headshare.model.with_heads`) and masked,
draw their own streams and are judged by their own cohort's evaluator at their own shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from headshare.model import EnsembleTransformer, with_heads
from headshare.model_config import ModelConfig
from headshare.training import Evaluator


def head_mask(configs: Sequence[ModelConfig], family: ModelConfig) -> Tensor | None:
    """[E, n_layers, n_heads] with 1 on each member's own heads and 0 on its padding (member e of shape
    ``configs[e]``); None when every member has every head."""
    if all(cfg.n_heads == family.n_heads for cfg in configs):
        return None
    heads = torch.tensor([cfg.n_heads for cfg in configs])
    own = (torch.arange(family.n_heads) < heads[:, None]).float()  # [E, H]
    return own[:, None, :].expand(-1, family.n_layers, -1).contiguous()


class GroupEvaluator:
    """Each cohort's own evaluator on its own members, cut out of the family ensemble at their own shape.

    Outputs are concatenated over cohorts; an output whose trailing shape depends on the shape (e.g. one
    value per head) is padded with NaN to the widest, and :meth:`own` cuts a member's back out.
    """

    def __init__(self, parts: Sequence[tuple[ModelConfig, int, Evaluator]]) -> None:
        self.parts = list(parts)  # (cohort's shape, members, evaluator), in member order
        self.shapes: list[dict[str, tuple[int, ...]]] = []

    def __call__(self, model: EnsembleTransformer) -> dict[str, np.ndarray]:
        outputs, start = [], 0
        for cfg, size, evaluate in self.parts:
            evaluated = evaluate(sub_ensemble(model, range(start, start + size), cfg))
            outputs.append({name: np.asarray(values) for name, values in evaluated.items()})
            start += size
        self.shapes = [{name: values.shape[1:] for name, values in output.items()} for output in outputs]
        joined = {}
        for name in outputs[0]:
            widest = tuple(np.max([output[name].shape[1:] for output in outputs], axis=0).astype(int))
            padded = []
            for output in outputs:
                values = output[name].astype(np.float64)
                pad = [(0, 0)] + [(0, w - n) for w, n in zip(widest, values.shape[1:])]
                padded.append(np.pad(values, pad, constant_values=np.nan))
            joined[name] = np.concatenate(padded)
        return joined

    def own(self, model: EnsembleTransformer, member: int, name: str, values: np.ndarray) -> np.ndarray:
        """Member ``member``'s curve of output ``name`` ([n_eval, *padded]) cut to its own cohort's shape
        (``model`` is evaluated once if no evaluation ran in this process, as when a finished run resumes)."""
        if not self.shapes:
            with torch.no_grad():
                self(model)
        start = 0
        for (_, size, _), shapes in zip(self.parts, self.shapes):
            if member < start + size:
                return values[(slice(None), *(slice(0, n) for n in shapes[name]))]
            start += size
        raise IndexError(f"member {member} lies beyond the group's {start} members")


def sub_ensemble(model: EnsembleTransformer, members: Sequence[int], cfg: ModelConfig) -> EnsembleTransformer:
    """Members ``members`` of ``model`` as an ensemble of their own shape ``cfg`` (the model itself when
    that is all of it); copies otherwise."""
    if cfg == model.cfg and list(members) == list(range(model.n_members)):
        return model
    states = [with_heads(model.member_state_dict(index), model.cfg, cfg.n_heads) for index in members]
    return EnsembleTransformer.from_members(cfg, states).train(model.training)
