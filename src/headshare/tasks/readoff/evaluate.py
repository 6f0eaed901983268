"""The readoff convergence evaluator: held-out cross-entropy (and accuracy) at the readoff position."""

from __future__ import annotations

import numpy as np
import torch

from headshare.evaluation import mean_and_se, on_device
from headshare.extraction import chunks
from headshare.model import EnsembleTransformer
from headshare.seeding import derived_rng
from headshare.tasks.readoff.sampler import sample_readoff
from headshare.tasks.readoff.settings import ReadoffSettings


class ReadoffEvaluator:
    """One held-out batch shared by every model (paired comparisons)."""

    def __init__(self, settings: ReadoffSettings, n_sequences: int) -> None:
        sample = sample_readoff(n_sequences, settings.length, derived_rng(settings.seed, "readoff-convergence"))
        self.tokens, self.labels = sample.tokens, sample.labels

    def __call__(self, model: EnsembleTransformer) -> dict[str, np.ndarray]:
        tokens = on_device(model, self.tokens)
        logits = torch.cat(
            [model(tokens[part].expand(model.n_members, -1, -1))[:, :, -1].double().cpu() for part in chunks(len(tokens))],
            dim=1,
        )  # [E, N, classes]
        labels = torch.as_tensor(self.labels)
        loss = -torch.log_softmax(logits, dim=-1).gather(-1, labels.expand(model.n_members, -1).unsqueeze(-1))[..., 0]
        metric, error = mean_and_se(loss.numpy())
        accuracy = (logits.argmax(-1) == labels).double().mean(-1).numpy()
        return {"metric": metric, "metric_se": error, "accuracy": accuracy}
