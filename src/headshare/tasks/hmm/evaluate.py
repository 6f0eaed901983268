"""The hmm convergence evaluator: paired excess loss over the exact filter on a held-out batch, with the
attention and the factored belief geometry tracked over training (the published result says factoring
appears early)."""

from __future__ import annotations

import numpy as np
import torch

from headshare.analysis.geometry import belief_subspace, effective_dimension, subspace_overlap
from headshare.evaluation import last_query_attention, mean_and_se, on_device
from headshare.extraction import attention_hooks, chunks, final_residual_hook
from headshare.model import EnsembleTransformer
from headshare.seeding import derived_rng
from headshare.tasks.base import Cohort
from headshare.tasks.hmm.exact import filter_log_loss
from headshare.tasks.hmm.sampler import sample_product
from headshare.tasks.hmm.settings import HMMSettings


GEOMETRY_SEQUENCES = 500  # sequences of the batch the geometry is tracked on (5,000 rows at context 10)


class HMMEvaluator:
    """Every member of a cohort on a batch of its own (condition, a), shared by every model of that point so
    that comparisons across head counts and seeds are paired. The metric is the excess of the model's loss
    over the exact filter's on the same tokens, on the positions the member is trained on (nats)."""

    def __init__(self, settings: HMMSettings, cohort: Cohort, n_sequences: int) -> None:
        condition = settings.condition(cohort.coords["condition"])
        tokens, filter_loss, beliefs = [], [], []
        for member in cohort.members:
            a = member.coords["a"]
            rng = derived_rng(settings.seed, "hmm-convergence", condition.id, a)
            processes = condition.factor_processes(a)
            sample = sample_product(*processes, n_sequences, settings.context + 1, rng)
            tokens.append(sample.tokens)
            beliefs.append([factor.beliefs[:, :-1] for factor in sample.factors])  # after each input token
            filter_loss.append(sum(filter_log_loss(p, s.tokens) for p, s in zip(processes, sample.factors))[:, 1:])
        self.tokens = np.stack(tokens)  # [E, N, T + 1]
        self.beliefs = [[b.reshape(-1, b.shape[-1]) for b in member] for member in beliefs]  # per member, factor
        self.filter_loss = np.stack(filter_loss)  # [E, N, T]
        self.judged = np.stack(
            [np.arange(settings.context) >= (settings.context - 1 if m.coords["loss"] == "last" else 0) for m in cohort.members]
        )  # [E, T]

    def __call__(self, model: EnsembleTransformer) -> dict[str, np.ndarray]:
        tokens = on_device(model, self.tokens)
        inputs, targets = tokens[..., :-1], tokens[..., 1:]
        residual_hook = final_residual_hook(model.cfg.n_layers)
        pattern_hooks = attention_hooks(model.cfg.n_layers, "hook_pattern")
        losses, residual, attention = [], [], 0.0
        for part in chunks(inputs.shape[1]):  # one forward pass gives the loss, the attention and the geometry
            logits, cache = model.run_with_cache(inputs[:, part], [residual_hook, *pattern_hooks])
            log_probs = torch.log_softmax(logits.double(), dim=-1)
            losses.append(-log_probs.gather(-1, targets[:, part].unsqueeze(-1)).squeeze(-1).cpu())
            attention = attention + last_query_attention([cache[name] for name in pattern_hooks])
            if part.start < GEOMETRY_SEQUENCES:
                residual.append(cache[residual_hook][:, : GEOMETRY_SEQUENCES - part.start].double().cpu())
        excess = torch.cat(losses, dim=1).numpy() - self.filter_loss  # [E, N, T]
        per_sequence = (excess * self.judged[:, None]).sum(-1) / self.judged.sum(-1)[:, None]
        metric, error = mean_and_se(per_sequence)
        activations = torch.cat(residual, dim=1).numpy()
        geometry = [self._geometry(member, activations[member]) for member in range(len(self.beliefs))]
        return {
            "metric": metric,
            "metric_se": error,
            "attention": (attention / inputs.shape[1]).cpu().numpy(),
            "factor_overlap": np.array([overlap for overlap, _ in geometry]),
            "belief_dimension": np.array([dimension for _, dimension in geometry]),
        }

    def _geometry(self, member: int, residual: np.ndarray) -> tuple[float, float]:
        """The factors' subspace overlap and the joint read-out's effective dimension on every (sequence,
        position) of the batch's first GEOMETRY_SEQUENCES sequences (no held-out split: this tracks a trend;
        the final stores hold the scores)."""
        activations = residual.reshape(-1, residual.shape[-1])
        first, second = (beliefs[: len(activations)] for beliefs in self.beliefs[member])
        overlap = subspace_overlap(belief_subspace(activations, first), belief_subspace(activations, second))
        joint = np.einsum("ni,nj->nij", first, second).reshape(len(first), -1)
        design = np.column_stack([activations, np.ones(len(activations))])
        fitted = design @ np.linalg.lstsq(design, joint, rcond=None)[0]
        return overlap, float(effective_dimension(fitted))
