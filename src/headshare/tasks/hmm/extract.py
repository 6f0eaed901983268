"""Evidence from trained product-HMM models: paired excess loss, attention vs distance, belief geometry and
head ablation, for every layer and head.

Losses (excess, ablation) are judged on the positions each model was trained on: every predicted position,
or the last one only, with the exact optimum of those same positions.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from headshare.analysis.beliefs import belief_regression
from headshare.analysis.geometry import (
    belief_subspace,
    effective_dimension,
    principal_angles,
    subspace_overlap,
    variance_share,
)
from headshare.analysis.decay import attention_by_distance, fit_decay, fit_decay_by_parity
from headshare.extraction import SAMPLE_SEQUENCES, attention_hooks, chunks, final_residual_hook
from headshare.model import EnsembleTransformer
from headshare.seeding import derived_rng
from headshare.tasks.base import Cohort

PARITIES = ("even", "odd")
HELD_OUT_FRACTION = 0.2  # distinct prefixes held out of the belief regression
SIMPLEX_POINTS = 2000  # belief read-outs kept for the simplex figure


@torch.no_grad()
def _forward(
    model: EnsembleTransformer, inputs: torch.Tensor, targets: torch.Tensor, factor_targets: torch.Tensor, n2: int,
    hooks: list[str], **ablation: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Joint and per-factor -log p of the targets ([E,B,T] and [E,2,B,T]) and the cached activations."""
    logits, cache = model.run_with_cache(inputs, hooks, **ablation)
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    joint = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    pairs = log_probs.unflatten(-1, (-1, n2))
    marginals = (torch.logsumexp(pairs, dim=-1), torch.logsumexp(pairs, dim=-2))
    factors = torch.stack(
        [-m.gather(-1, factor_targets[:, i].unsqueeze(-1)).squeeze(-1) for i, m in enumerate(marginals)], dim=1
    )
    return joint, factors, cache


def _stack_layers(cache: dict[str, torch.Tensor], site: str, n_layers: int, dim: int) -> torch.Tensor:
    return torch.stack([cache[f"blocks.{layer}.attn.{site}"] for layer in range(n_layers)], dim=dim)


def distinct_prefix_rows(tokens: np.ndarray, n_tokens: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sequence, position) of one representative per distinct prefix, and how often each prefix occurs.

    A deterministic model maps equal prefixes to equal activations, so regressing on distinct prefixes
    weighted by their frequency (their empirical probability) keeps held-out prefixes truly unseen.
    """
    n_seq, length = tokens.shape
    powers = n_tokens ** np.arange(length, dtype=np.int64)
    codes = np.cumsum(tokens * powers, axis=1) + (n_tokens ** np.arange(1, length + 1, dtype=np.int64))
    _, first, counts = np.unique(codes.T.ravel(), return_index=True, return_counts=True)
    positions, sequences = np.divmod(first, n_seq)
    return sequences, positions, counts.astype(np.float64)


def extract_hmm(
    cohort: Cohort, model: EnsembleTransformer, datasets: list[xr.Dataset], device: torch.device
) -> list[xr.Dataset]:
    """Evidence for each member of an HMM cohort on its own evaluation set (``datasets[i]``)."""
    n_layers = model.cfg.n_layers
    tokens = torch.as_tensor(np.stack([d["tokens"].values for d in datasets]), device=device)
    factor_tokens = torch.as_tensor(np.stack([d["factor_tokens"].values for d in datasets]), device=device)
    n2 = int(datasets[0]["factor_n_tokens"].sel(factor=2))
    inputs, targets, factor_targets = tokens[..., :-1], tokens[..., 1:], factor_tokens[..., 1:]
    n_seq = inputs.shape[1]
    residual_hook = final_residual_hook(n_layers)
    hooks = [*attention_hooks(n_layers, "hook_pattern", "hook_z", "hook_result"), residual_hook]

    joint_loss, factor_loss, residual, samples = [], [], [], {}
    pattern_sum: torch.Tensor | float = 0.0
    z_sum: torch.Tensor | float = 0.0
    for part in chunks(n_seq):
        joint, factors, cache = _forward(model, inputs[:, part], targets[:, part], factor_targets[:, :, part], n2, hooks)
        joint_loss.append(joint.cpu())
        factor_loss.append(factors.cpu())
        pattern = _stack_layers(cache, "hook_pattern", n_layers, dim=2).double()  # [E, B, L, H, T, T]
        pattern_sum = pattern_sum + pattern.sum(dim=1)
        z_sum = z_sum + _stack_layers(cache, "hook_z", n_layers, dim=1).double().sum(dim=2)  # [E, L, T, H, dh]
        residual.append(cache[residual_hook].double().cpu())
        if not samples:
            keep = slice(0, min(SAMPLE_SEQUENCES, part.stop - part.start))
            samples = {
                "pattern": pattern[:, keep].float().cpu().numpy(),
                "resid": cache[residual_hook][:, keep].cpu().numpy(),
                "result": _stack_layers(cache, "hook_result", n_layers, dim=3)[:, keep].cpu().numpy(),
            }
    mean_pattern = (pattern_sum / n_seq).cpu().numpy()  # [E, L, H, T, T]
    ablation = _ablate_heads(model, inputs, targets, factor_targets, n2, (z_sum / n_seq).float())
    joint_all = torch.cat(joint_loss, dim=1).numpy()  # [E, N, T]
    factor_all = torch.cat(factor_loss, dim=2).numpy()  # [E, 2, N, T]
    residual_all = torch.cat(residual, dim=1).numpy()  # [E, N, T, d_model]
    return [
        _member_store(
            data,
            slice(-1, None) if member.coords["loss"] == "last" else slice(None),
            joint_all[index], factor_all[index], mean_pattern[index], residual_all[index],
            tokens[index].cpu().numpy(), ablation[index], {k: v[index] for k, v in samples.items()},
            derived_rng(0, "belief-split", member.path),
        )
        for index, (member, data) in enumerate(zip(cohort.members, datasets))
    ]


def _ablate_heads(
    model: EnsembleTransformer, inputs: torch.Tensor, targets: torch.Tensor, factor_targets: torch.Tensor,
    n2: int, z_mean: torch.Tensor,
) -> np.ndarray:
    """[E, L, H, 3, T]: mean joint and per-factor loss per position with one head (of one layer) replaced
    by its mean output over the evaluation set."""
    cfg = model.cfg
    losses = np.zeros((model.n_members, cfg.n_layers, cfg.n_heads, 3, inputs.shape[2]))
    for layer in range(cfg.n_layers):
        for head in range(cfg.n_heads):
            mask = torch.ones(model.n_members, cfg.n_layers, cfg.n_heads, device=inputs.device)
            mask[:, layer, head] = 0.0
            total = np.zeros((model.n_members, 3, inputs.shape[2]))
            for part in chunks(inputs.shape[1]):
                joint, factors, _ = _forward(
                    model, inputs[:, part], targets[:, part], factor_targets[:, :, part], n2, [],
                    head_mask=mask, z_fill=z_mean,
                )
                total[:, 0] += joint.sum(dim=1).cpu().numpy()
                total[:, 1:] += factors.sum(dim=2).cpu().numpy()
            losses[:, layer, head] = total / inputs.shape[1]
    return losses


def _member_store(
    data: xr.Dataset, judged: slice, joint_loss: np.ndarray, factor_loss: np.ndarray, mean_pattern: np.ndarray,
    residual: np.ndarray, tokens: np.ndarray, ablation: np.ndarray, samples: dict[str, np.ndarray],
    rng: np.random.Generator,
) -> xr.Dataset:
    n_seq, context = joint_loss.shape
    n_layers, n_heads = mean_pattern.shape[:2]
    distances = np.arange(context)
    filter_loss = data["filter_loss"].values[:, 1:]
    paired = (joint_loss - filter_loss)[:, judged].mean(axis=1)  # per-sequence excess over judged positions
    excess, excess_se = paired.mean(), paired.std(ddof=1) / np.sqrt(n_seq)
    factor_filter = data["factor_filter_loss"].values[:, :, 1:]
    factor_excess = (factor_loss - factor_filter)[:, :, judged].mean(axis=(1, 2))
    context_gain = data.attrs["unigram_loss"] - data["optimal_loss"].values[1:][judged].mean()

    # Attention vs distance from the mean pattern: ratios within a query row are what the claim is about.
    # A model trained on the last position only is fitted on that query's curve; the others on every
    # query's curve, with a CI over query positions.
    by_distance = attention_by_distance(mean_pattern[:, None])  # layers as the leading axis
    curves = by_distance.last[:, :, None] if judged.start == -1 else by_distance.per_query  # [L, H, Q, D]
    heads = [(layer, head) for layer in range(n_layers) for head in range(n_heads)]
    decay = {lh: fit_decay(curves[lh], distances) for lh in heads}
    parity = {lh: fit_decay_by_parity(curves[lh], distances) for lh in heads}

    # Belief regression from the final residual stream, on distinct prefixes of the model's input.
    sequences, positions, counts = distinct_prefix_rows(tokens[:, :-1], int(tokens.max()) + 1)
    activations = residual[sequences, positions]
    test_mask = rng.random(len(counts)) < HELD_OUT_FRACTION
    targets = {
        "joint": data["beliefs"].values[sequences, positions],
        "factor1": data["beliefs_1"].values[sequences, positions],
        "factor2": data["beliefs_2"].values[sequences, positions],
    }
    fits = {name: belief_regression(activations, y, counts, test_mask=test_mask) for name, y in targets.items()}
    subspaces = [belief_subspace(activations, targets[f"factor{k}"], counts) for k in (1, 2)]
    angles = principal_angles(*subspaces) if all(basis.shape[1] for basis in subspaces) else np.array([np.nan])
    outputs = samples["result"].reshape(-1, n_layers, n_heads, samples["result"].shape[-1])  # rows: (sample, query)
    base_loss = np.array([joint_loss[:, judged].mean(), *factor_loss[:, :, judged].mean(axis=(1, 2))])
    ablation_rise = ablation[..., judged].mean(axis=-1) - base_loss  # [L, H, 3]
    simplex_rows = slice(0, min(SIMPLEX_POINTS, len(counts)))

    def per_head(value) -> np.ndarray:
        """[L, H, ...] array of ``value(layer, head)``."""
        return np.array([[value((layer, head)) for head in range(n_heads)] for layer in range(n_layers)])

    def fit_field(fits_by_head: dict, field: str) -> np.ndarray:
        return per_head(lambda lh: getattr(fits_by_head[lh], field))

    def parity_field(field: str) -> np.ndarray:
        return per_head(lambda lh: [getattr(parity[lh].even, field), getattr(parity[lh].odd, field)])

    lh, dist, position = ("layer", "head"), "distance", "position"
    store = xr.Dataset(
        {
            "model_loss": ((position,), joint_loss.mean(axis=0)),
            "excess_loss": ((), excess),
            "excess_loss_se": ((), excess_se),
            "normalised_excess": ((), excess / context_gain),
            "factor_excess_loss": (("factor",), factor_excess),
            "attention_distance": ((*lh, dist), by_distance.last),
            "attention_distance_all": ((*lh, dist), by_distance.mean),
            "attention_pattern_mean": ((*lh, "query_pos", "key_pos"), mean_pattern),
            "decay_rate": (lh, fit_field(decay, "rate")),
            "decay_ci_low": (lh, fit_field(decay, "ci_low")),
            "decay_ci_high": (lh, fit_field(decay, "ci_high")),
            "decay_rate_parity": ((*lh, "parity"), parity_field("rate")),
            "decay_parity_ci_low": ((*lh, "parity"), parity_field("ci_low")),
            "decay_parity_ci_high": ((*lh, "parity"), parity_field("ci_high")),
            "belief_r2": (("target",), np.array([fit.r2 for fit in fits.values()])),
            "belief_rmse": (("target",), np.array([fit.rmse for fit in fits.values()])),
            "factor_overlap": ((), subspace_overlap(*subspaces)),
            "factor_min_angle": ((), float(np.degrees(angles[0]))),
            "belief_dimension": ((), float(effective_dimension(fits["joint"].predictions, counts))),
            "head_factor_share": (
                (*lh, "factor"),
                per_head(lambda lh: [variance_share(outputs[:, lh[0], lh[1]], basis) for basis in subspaces]),
            ),
            "ablation_excess": (lh, ablation_rise[..., 0]),
            "ablation_factor_excess": ((*lh, "factor"), ablation_rise[..., 1:]),
            **{
                f"belief_{kind}_{k}": (("simplex_point", f"state_{k}"), values[simplex_rows])
                for k in (1, 2)
                for kind, values in (("true", targets[f"factor{k}"]), ("pred", fits[f"factor{k}"].predictions))
            },
            "attention_pattern": (("sample", *lh, "query_pos", "key_pos"), samples["pattern"]),
            "resid_post": (("sample", "query_pos", "d_model"), samples["resid"]),
            "head_result": (("sample", "query_pos", *lh, "d_model"), samples["result"]),
        },
        coords={
            "layer": np.arange(n_layers),
            "head": np.arange(n_heads),
            dist: distances,
            position: np.arange(1, context + 1),
            "factor": [1, 2],
            "parity": np.array(PARITIES, dtype=object),
            "target": np.array(list(fits), dtype=object),
            "query_pos": np.arange(context),
            "key_pos": np.arange(context),
            "sample": np.arange(samples["pattern"].shape[0]),
        },
    )
    store["belief_r2"].attrs["description"] = "held-out R^2, distinct prefixes weighted by frequency"
    store["ablation_factor_excess"].attrs["description"] = (
        "rise in each factor's marginal loss (nats per position) when the head is replaced by its mean output"
    )
    return store
