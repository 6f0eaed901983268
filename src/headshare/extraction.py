"""Stage 3: run trained models on the evaluation sets and turn activations into evidence.

One function per family takes a cohort's ensemble and the evaluation data of each member and returns one
xarray Dataset per member: summary variables (the ones combined across the grid; see headshare.combine) and
small samples of raw activations (attention patterns, residual stream, per-head outputs) for users' own
analyses. Evaluation runs in chunks of sequences so memory stays flat for any eval-set size.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import xarray as xr

from headshare.analysis.beliefs import belief_regression
from headshare.analysis.decay import attention_by_distance, fit_decay, fit_decay_by_parity
from headshare.analysis.readoff import accuracy, kendall_tau, preference_order, signal_preference
from headshare.analysis.regression import gd_query_gradient, input_gradient_cosine, prediction_l2
from headshare.data.readoff import N_SIGNAL
from headshare.model import EnsembleTransformer

SAMPLE_SEQUENCES = 256  # raw activations kept per model for users' own analyses
CHUNK = 2000  # sequences per forward pass
PARITIES = ("even", "odd")


def _chunks(n: int, size: int = CHUNK) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _last_layer(model: EnsembleTransformer) -> int:
    return model.cfg.n_layers - 1


@torch.no_grad()
def _hmm_forward(
    model: EnsembleTransformer, inputs: torch.Tensor, targets: torch.Tensor, factor_tokens: torch.Tensor, n2: int,
    **ablation: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Joint and per-factor -log p of the targets ([E,B,T] and [E,2,B,T]) and the cached activations."""
    layer = _last_layer(model)
    names = ["blocks.0.attn.hook_pattern", "blocks.0.attn.hook_z", f"blocks.{layer}.hook_resid_post",
             "blocks.0.attn.hook_result"] if not ablation else []
    logits, cache = model.run_with_cache(inputs, names, **ablation)
    log_probs = torch.log_softmax(logits.double(), dim=-1)
    joint = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    pairs = log_probs.unflatten(-1, (-1, n2))
    marginals = (torch.logsumexp(pairs, dim=-1), torch.logsumexp(pairs, dim=-2))
    factors = torch.stack(
        [-m.gather(-1, factor_tokens[:, i].unsqueeze(-1)).squeeze(-1) for i, m in enumerate(marginals)], dim=1
    )
    return joint, factors, cache


def _distinct_prefix_rows(tokens: np.ndarray, n_tokens: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    model: EnsembleTransformer,
    datasets: list[xr.Dataset],
    last_only: list[bool],
    rng: np.random.Generator,
    device: torch.device,
) -> list[xr.Dataset]:
    """Evidence for each member of an HMM cohort on its own evaluation set (``datasets[i]``).

    Losses (excess, ablation) are judged on the positions each model was trained on: every predicted
    position, or the last one only (``last_only[i]``), with the exact optimum of those same positions.
    """
    n_members = model.n_members
    tokens = torch.as_tensor(np.stack([d["tokens"].values for d in datasets]), device=device)
    factor_tokens = torch.as_tensor(np.stack([d["factor_tokens"].values for d in datasets]), device=device)
    n2 = int(datasets[0]["factor_n_tokens"].sel(factor=2))
    inputs, targets, factor_targets = tokens[..., :-1], tokens[..., 1:], factor_tokens[..., 1:]
    n_seq = inputs.shape[1]
    layer = _last_layer(model)

    joint_loss, factor_loss, z_sum, pattern_sum = [], [], 0.0, 0.0
    residual, samples = [], {}
    for part in _chunks(n_seq):
        joint, factors, cache = _hmm_forward(model, inputs[:, part], targets[:, part], factor_targets[:, :, part], n2)
        joint_loss.append(joint.cpu())
        factor_loss.append(factors.cpu())
        pattern = cache["blocks.0.attn.hook_pattern"].double()
        pattern_sum = pattern_sum + pattern.sum(dim=1)
        z_sum = z_sum + cache["blocks.0.attn.hook_z"].double().sum(dim=1)
        residual.append(cache[f"blocks.{layer}.hook_resid_post"].double().cpu())
        if not samples:
            keep = slice(0, min(SAMPLE_SEQUENCES, part.stop - part.start))
            samples = {
                "pattern": pattern[:, keep].float().cpu().numpy(),
                "resid": cache[f"blocks.{layer}.hook_resid_post"][:, keep].cpu().numpy(),
                "result": cache["blocks.0.attn.hook_result"][:, keep].cpu().numpy(),
            }
    joint_loss = torch.cat(joint_loss, dim=1).numpy()  # [E, N, T]
    factor_loss = torch.cat(factor_loss, dim=2).numpy()  # [E, 2, N, T]
    residual = torch.cat(residual, dim=1).numpy()  # [E, N, T, d_model]
    mean_pattern = (pattern_sum / n_seq).cpu().numpy()  # [E, H, T, T]
    z_mean = (z_sum / n_seq).float()  # [E, T, H, d_head]

    ablation = _ablate_heads(model, inputs, targets, factor_targets, n2, z_mean)
    results = []
    for member, data in enumerate(datasets):
        results.append(
            _hmm_member_store(
                data, slice(-1, None) if last_only[member] else slice(None), joint_loss[member],
                factor_loss[member], mean_pattern[member], residual[member], tokens[member].cpu().numpy(),
                ablation[member], {k: v[member] for k, v in samples.items()}, rng,
            )
        )
    return results


def _ablate_heads(
    model: EnsembleTransformer, inputs: torch.Tensor, targets: torch.Tensor, factor_targets: torch.Tensor,
    n2: int, z_mean: torch.Tensor,
) -> np.ndarray:
    """[E, H, 3, T]: mean joint and per-factor loss per position with each head replaced by its mean output."""
    cfg = model.cfg
    losses = np.zeros((model.n_members, cfg.n_heads, 3, inputs.shape[2]))
    fill = z_mean.unsqueeze(1).expand(-1, cfg.n_layers, -1, -1, -1).contiguous()
    for head in range(cfg.n_heads):
        mask = torch.ones(model.n_members, cfg.n_layers, cfg.n_heads, device=inputs.device)
        mask[:, 0, head] = 0.0
        total = np.zeros((model.n_members, 3, inputs.shape[2]))
        for part in _chunks(inputs.shape[1]):
            joint, factors, _ = _hmm_forward(
                model, inputs[:, part], targets[:, part], factor_targets[:, :, part], n2, head_mask=mask, z_fill=fill
            )
            total[:, 0] += joint.sum(dim=1).cpu().numpy()
            total[:, 1:] += factors.sum(dim=2).cpu().numpy()
        losses[:, head] = total / inputs.shape[1]
    return losses


def _hmm_member_store(
    data: xr.Dataset, judged: slice, joint_loss: np.ndarray, factor_loss: np.ndarray, mean_pattern: np.ndarray,
    residual: np.ndarray, tokens: np.ndarray, ablation: np.ndarray, samples: dict[str, np.ndarray],
    rng: np.random.Generator,
) -> xr.Dataset:
    n_seq, context = joint_loss.shape
    n_heads = mean_pattern.shape[0]
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
    by_distance = attention_by_distance(mean_pattern[None])
    curves = by_distance.last[:, None] if judged.start == -1 else by_distance.per_query
    decay = [fit_decay(curves[h], distances) for h in range(n_heads)]
    parity = [fit_decay_by_parity(curves[h], distances) for h in range(n_heads)]

    # Belief regression from the final residual stream, on distinct prefixes of the model's input.
    sequences, positions, counts = _distinct_prefix_rows(tokens[:, :-1], int(tokens.max()) + 1)
    activations = residual[sequences, positions]
    test_mask = rng.random(len(counts)) < 0.2
    targets = {
        "joint": data["beliefs"].values[sequences, positions],
        "factor1": data["beliefs_1"].values[sequences, positions],
        "factor2": data["beliefs_2"].values[sequences, positions],
    }
    fits = {name: belief_regression(activations, y, counts, test_mask=test_mask) for name, y in targets.items()}
    base_loss = np.array([joint_loss[:, judged].mean(), *factor_loss[:, :, judged].mean(axis=(1, 2))])
    ablation_rise = ablation[..., judged].mean(axis=-1) - base_loss  # [H, 3]
    sample_count = samples["pattern"].shape[0]
    simplex_rows = slice(0, min(2000, len(counts)))

    def fit_field(fits_by_head: list, field: str) -> np.ndarray:
        return np.array([getattr(fit, field) for fit in fits_by_head])

    head, dist, position = "head", "distance", "position"
    store = xr.Dataset(
        {
            "model_loss": ((position,), joint_loss.mean(axis=0)),
            "excess_loss": ((), excess),
            "excess_loss_se": ((), excess_se),
            "normalised_excess": ((), excess / context_gain),
            "factor_excess_loss": (("factor",), factor_excess),
            "attention_distance": ((head, dist), by_distance.last),
            "attention_distance_all": ((head, dist), by_distance.mean),
            "attention_pattern_mean": ((head, "query_pos", "key_pos"), mean_pattern),
            "decay_rate": ((head,), fit_field(decay, "rate")),
            "decay_ci_low": ((head,), fit_field(decay, "ci_low")),
            "decay_ci_high": ((head,), fit_field(decay, "ci_high")),
            "decay_rate_parity": ((head, "parity"), np.array([[p.even.rate, p.odd.rate] for p in parity])),
            "decay_parity_ci_low": ((head, "parity"), np.array([[p.even.ci_low, p.odd.ci_low] for p in parity])),
            "decay_parity_ci_high": ((head, "parity"), np.array([[p.even.ci_high, p.odd.ci_high] for p in parity])),
            "belief_r2": (("target",), np.array([fit.r2 for fit in fits.values()])),
            "belief_rmse": (("target",), np.array([fit.rmse for fit in fits.values()])),
            "ablation_excess": ((head,), ablation_rise[:, 0]),
            "ablation_factor_excess": ((head, "factor"), ablation_rise[:, 1:]),
            **{
                f"belief_{kind}_{k}": (("simplex_point", f"state_{k}"), values[simplex_rows])
                for k in (1, 2)
                for kind, values in (("true", targets[f"factor{k}"]), ("pred", fits[f"factor{k}"].predictions))
            },
            "attention_pattern": (("sample", head, "query_pos", "key_pos"), samples["pattern"]),
            "resid_post": (("sample", "query_pos", "d_model"), samples["resid"]),
            "head_result": (("sample", "query_pos", head, "d_model"), samples["result"]),
        },
        coords={
            head: np.arange(n_heads),
            dist: distances,
            position: np.arange(1, context + 1),
            "factor": [1, 2],
            "parity": np.array(PARITIES, dtype=object),
            "target": np.array(list(fits), dtype=object),
            "query_pos": np.arange(context),
            "key_pos": np.arange(context),
            "sample": np.arange(sample_count),
        },
    )
    store["belief_r2"].attrs["description"] = "held-out R^2, distinct prefixes weighted by frequency"
    store["ablation_factor_excess"].attrs["description"] = (
        "rise in each factor's marginal loss (nats per position) when the head is replaced by its mean output"
    )
    return store


def extract_readoff(model: EnsembleTransformer, data: xr.Dataset, device: torch.device) -> list[xr.Dataset]:
    """Accuracy and each head's attention preference over the signal tokens, per member."""
    tokens = torch.as_tensor(data["tokens"].values, device=device)
    labels = data["labels"].values
    logits, patterns = [], []
    with torch.no_grad():
        for part in _chunks(tokens.shape[0]):
            batch = tokens[part].expand(model.n_members, -1, -1)
            out, cache = model.run_with_cache(batch, ["blocks.0.attn.hook_pattern"])
            logits.append(out[:, :, -1].double().cpu())
            patterns.append(cache["blocks.0.attn.hook_pattern"][:, :, :, -1].double().cpu())  # [E, B, H, T_k]
    logits_all = torch.cat(logits, dim=1)
    readoff_attention = torch.cat(patterns, dim=1).numpy()
    losses = torch.nn.functional.cross_entropy(
        logits_all.flatten(0, 1), torch.as_tensor(labels).repeat(model.n_members), reduction="none"
    ).view(model.n_members, -1)
    results = []
    for member in range(model.n_members):
        preference = signal_preference(readoff_attention[member], data["tokens"].values, n_signal=N_SIGNAL)
        orders = preference_order(preference)
        tau = kendall_tau(orders[0], orders[1]) if preference.shape[0] > 1 else np.nan
        results.append(
            xr.Dataset(
                {
                    "accuracy": ((), accuracy(logits_all[member].numpy(), labels)),
                    "loss": ((), float(losses[member].mean())),
                    "signal_preference": (("head", "signal"), preference),
                    "preference_order": (("head", "rank"), orders),
                    "preference_tau": ((), tau),
                    "readoff_attention": (("sample", "head", "key_pos"), readoff_attention[member, :SAMPLE_SEQUENCES]),
                },
                coords={
                    "head": np.arange(preference.shape[0]),
                    "signal": np.arange(N_SIGNAL),
                    "rank": np.arange(N_SIGNAL),
                    "key_pos": np.arange(tokens.shape[1]),
                    "sample": np.arange(min(SAMPLE_SEQUENCES, tokens.shape[0])),
                },
            )
        )
    return results


def extract_regression(model: EnsembleTransformer, data: xr.Dataset, device: torch.device) -> list[xr.Dataset]:
    """Loss against the one-step-GD and least-squares references, and the gradient alignment with GD."""
    tokens = data["tokens"].values
    targets = data["targets"].values
    eta = data.attrs["gd_eta"]
    reference_gradient = gd_query_gradient(tokens, eta)
    predictions, gradients = [], []
    for part in _chunks(tokens.shape[0]):
        batch = torch.as_tensor(tokens[part], dtype=torch.float32, device=device)
        batch = batch.expand(model.n_members, -1, -1, -1).clone().requires_grad_(True)
        y_hat = model(batch)[:, :, -1, 0]
        (gradient,) = torch.autograd.grad(y_hat.sum(), batch)
        predictions.append(y_hat.detach().double().cpu())
        gradients.append(gradient[:, :, -1, :-1].double().cpu())  # d y_hat / d x_query
    y_model = torch.cat(predictions, dim=1).numpy()
    grad_model = torch.cat(gradients, dim=1).numpy()
    gd = data["gd_prediction"].values
    results = []
    for member in range(model.n_members):
        loss = 0.5 * float(np.mean((y_model[member] - targets) ** 2))
        results.append(
            xr.Dataset(
                {
                    "loss": ((), loss),
                    "gd_loss_ratio": ((), loss / data.attrs["gd_loss"]),
                    "gradient_cosine": ((), input_gradient_cosine(grad_model[member], reference_gradient)),
                    "prediction_l2": ((), prediction_l2(y_model[member], gd)),
                    "prediction": (("task",), y_model[member, :SAMPLE_SEQUENCES]),
                },
                coords={"task": np.arange(min(SAMPLE_SEQUENCES, len(targets)))},
            )
        )
    return results
