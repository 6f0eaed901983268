"""Evidence from trained readoff models: accuracy, and each head's attention preference over the signal
tokens in every layer (with the Kendall tau between the first two heads' orders)."""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from headshare.analysis.readoff import accuracy, kendall_tau, preference_order, signal_preference
from headshare.extraction import SAMPLE_SEQUENCES, attention_hooks, chunks
from headshare.model import EnsembleTransformer
from headshare.tasks.readoff.sampler import N_SIGNAL


@torch.no_grad()
def extract_readoff(model: EnsembleTransformer, data: xr.Dataset, device: torch.device) -> list[xr.Dataset]:
    n_layers = model.cfg.n_layers
    hooks = attention_hooks(n_layers, "hook_pattern")
    tokens = torch.as_tensor(data["tokens"].values, device=device)
    labels = data["labels"].values
    logits, patterns = [], []
    for part in chunks(tokens.shape[0]):
        out, cache = model.run_with_cache(tokens[part].expand(model.n_members, -1, -1), hooks)
        logits.append(out[:, :, -1].double().cpu())
        # the readoff (last) query's attention over keys: [E, B, L, H, T_k]
        patterns.append(torch.stack([cache[name][:, :, :, -1] for name in hooks], dim=2).double().cpu())
    logits_all = torch.cat(logits, dim=1)
    readoff_attention = torch.cat(patterns, dim=1).numpy()
    losses = torch.nn.functional.cross_entropy(
        logits_all.flatten(0, 1), torch.as_tensor(labels).repeat(model.n_members), reduction="none"
    ).view(model.n_members, -1)
    sample_count = min(SAMPLE_SEQUENCES, tokens.shape[0])
    results = []
    for member in range(model.n_members):
        preference = np.stack(
            [signal_preference(readoff_attention[member, :, layer], data["tokens"].values, N_SIGNAL) for layer in range(n_layers)]
        )  # [L, H, S]
        orders = np.stack([preference_order(layer_preference) for layer_preference in preference])
        tau = np.array([kendall_tau(order[0], order[1]) if len(order) > 1 else np.nan for order in orders])
        results.append(
            xr.Dataset(
                {
                    "accuracy": ((), accuracy(logits_all[member].numpy(), labels)),
                    "loss": ((), float(losses[member].mean())),
                    "signal_preference": (("layer", "head", "signal"), preference),
                    "preference_order": (("layer", "head", "rank"), orders),
                    "preference_tau": (("layer",), tau),
                    "readoff_attention": (
                        ("sample", "layer", "head", "key_pos"), readoff_attention[member, :sample_count]
                    ),
                },
                coords={
                    "layer": np.arange(n_layers),
                    "head": np.arange(preference.shape[1]),
                    "signal": np.arange(N_SIGNAL),
                    "rank": np.arange(N_SIGNAL),
                    "key_pos": np.arange(tokens.shape[1]),
                    "sample": np.arange(sample_count),
                },
            )
        )
    return results
