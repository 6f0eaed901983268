"""A toy fourth task, kept outside the package: next-token prediction on a plain Markov chain.

It shows what a new task needs: this folder (the task class and its config schema) and a config naming it
in ``task_packages``. The chain stays in its state with probability ``stay`` and otherwise jumps uniformly
to one of the other n - 1 states; the uniform start is stationary, so the exact loss of every predicted
token is the entropy rate h(stay) + (1 - stay) log(n - 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from headshare.tasks import register
from headshare.tasks.base import (
    Cohort,
    StoreContract,
    Task,
    TaskSettings,
    Variable,
    common_settings,
    grid_fields,
    model_axes,
    transformer_shape,
)

GRID_AXES = ("n_layers", "n_heads", "d_head", "seed")
MODEL_STORE = StoreContract(
    {
        "loss": Variable((), "mean -log p of each predicted token (nats)"),
        "excess_loss": Variable((), "loss minus the chain's entropy rate (nats)"),
    }
)


@dataclass(frozen=True)
class MarkovSettings(TaskSettings):
    n_states: int
    stay: float
    context: int
    eval_sequences: int
    seed: int


def entropy_rate(n_states: int, stay: float) -> float:
    jump = 1.0 - stay
    terms = [stay * np.log(stay) if stay > 0 else 0.0, jump * np.log(jump / (n_states - 1)) if jump > 0 else 0.0]
    return float(-sum(terms))


def sample_chain(n_states: int, stay: float, n_seq: int, length: int, rng: np.random.Generator) -> np.ndarray:
    tokens = np.empty((n_seq, length), dtype=np.int64)
    tokens[:, 0] = rng.integers(n_states, size=n_seq)
    for t in range(1, length):
        jumps = rng.random(n_seq) >= stay
        offsets = rng.integers(1, n_states, size=n_seq)  # another state, uniformly
        tokens[:, t] = np.where(jumps, (tokens[:, t - 1] + offsets) % n_states, tokens[:, t - 1])
    return tokens


@dataclass(frozen=True)
class ChainSource:
    settings: MarkovSettings
    seeds: list[int]
    batch_size: int

    def __call__(self, step: int):
        import torch

        from headshare.training import Batch, loss_positions, member_rng

        s = self.settings
        tokens = np.stack(
            [sample_chain(s.n_states, s.stay, self.batch_size, s.context + 1, member_rng(seed, step)) for seed in self.seeds]
        )
        tokens = torch.from_numpy(tokens)
        return Batch(tokens[:, :, :-1].contiguous(), tokens[:, :, 1:].contiguous(), loss_positions(s.context, False))


@register
class MarkovTask(Task):
    name = "markov"
    cohort_axes = GRID_AXES[:3]
    member_axes = GRID_AXES[3:]
    cohort_template = "markov/L~{n_layers}_h~{n_heads}_dh~{d_head}"
    member_template = "seed~{seed}"
    dataset_template = "markov"
    schema_file = Path(__file__).with_name("schema.yaml")
    model_store = MODEL_STORE
    combined_store = MODEL_STORE.combined(GRID_AXES)

    def settings(self, config: dict) -> MarkovSettings:
        section = config["markov"]
        return MarkovSettings(
            **common_settings(config, "markov"),
            **grid_fields({**model_axes(section["grid"]), "seed": tuple(section["grid"]["seeds"])}),
            n_states=section["n_states"],
            stay=float(section["stay"]),
            context=section["context"],
            eval_sequences=section["eval_sequences"],
            seed=section["seed"],
        )

    def dataset_parameters(self, settings: MarkovSettings, key: dict[str, Any]) -> dict[str, Any]:
        return {"n_states": settings.n_states, "stay": settings.stay, "context": settings.context,
                "eval_sequences": settings.eval_sequences, "seed": settings.seed}

    def build_dataset(self, settings: MarkovSettings, key: dict[str, Any]):
        import xarray as xr

        from headshare.seeding import derived_rng

        rng = derived_rng(settings.seed, "markov-eval")
        tokens = sample_chain(settings.n_states, settings.stay, settings.eval_sequences, settings.context + 1, rng)
        return xr.Dataset(
            {"tokens": (("sequence", "position"), tokens)},
            attrs={"entropy_rate": entropy_rate(settings.n_states, settings.stay)},
        )

    def model_config(self, settings: MarkovSettings, cohort: Cohort):
        from headshare.model import ModelConfig

        n = settings.n_states
        return ModelConfig(n_ctx=settings.context, vocab_size=n, d_out=n, **transformer_shape(settings, cohort))

    def batch_source(self, settings: MarkovSettings, members, seeds: list[int], batch_size: int):
        return ChainSource(settings, seeds, batch_size), "xent"

    def evaluator(self, settings: MarkovSettings, cohort: Cohort):
        rng = np.random.default_rng(settings.seed + 1)
        tokens = sample_chain(settings.n_states, settings.stay, settings.training["eval_sequences"], settings.context + 1, rng)
        rate = entropy_rate(settings.n_states, settings.stay)

        def evaluate(model):
            import torch

            batch = torch.as_tensor(tokens, device=next(model.parameters()).device)
            logits = model(batch[:, :-1].expand(model.n_members, -1, -1))
            loss = torch.nn.functional.cross_entropy(
                logits.permute(0, 3, 1, 2).double(), batch[:, 1:].expand(model.n_members, -1, -1), reduction="none"
            ).mean(-1).cpu().numpy()  # [E, N]
            return {"metric": loss.mean(-1) - rate, "metric_se": loss.std(-1, ddof=1) / np.sqrt(loss.shape[-1])}

        return evaluate

    def extract(self, settings: MarkovSettings, cohort: Cohort, model, datasets, device):
        import torch
        import xarray as xr

        tokens = torch.as_tensor(datasets[0]["tokens"].values, device=device)
        with torch.no_grad():
            logits = model(tokens[:, :-1].expand(model.n_members, -1, -1))
        targets = tokens[:, 1:].expand(model.n_members, -1, -1)
        loss = torch.nn.functional.cross_entropy(logits.permute(0, 3, 1, 2).double(), targets, reduction="none")
        per_member = loss.mean(dim=(1, 2)).cpu().numpy()
        rate = datasets[0].attrs["entropy_rate"]
        return [xr.Dataset({"loss": ((), value), "excess_loss": ((), value - rate)}) for value in per_member]
