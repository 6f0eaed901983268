"""How often one-layer linear self-attention leaves the zero predictor's plateau on in-context regression.

Trains the default config's linear-attention regression model from ``--seeds`` initialisations with the
given learning rate, steps and initial weight scale (default: the model's own, 0.8 / sqrt(d_model)), and
prints every seed's final training loss over one-step GD's and how many seeds escaped (ratio below 1.5,
closer to GD than to the zero predictor's 2.02).

    python benchmarks/plateau_escape.py [--seeds 10] [--lr 3e-3] [--steps 4000] [--init-std S] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from headshare import tasks
from headshare.cohort_training import data_seed, init_seed
from headshare.config import load_config
from headshare.model import EnsembleTransformer
from headshare.tasks.regression.sampler import expected_gd_loss, expected_optimal_gd_step
from headshare.training import TrainConfig, train_ensemble

ESCAPED = 1.5  # loss / GD loss below this: closer to GD (1) than to the zero predictor (2.02 at d = N = 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--init-std", type=float, default=None, help="initial weight scale (default: the model's)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = load_config("config.yaml")
    config["regression"]["grid"].update(seeds=list(range(args.seeds)), attention=["linear"])
    task, settings = tasks.configured(config, "regression")
    cohort = task.cohorts(settings)[0]
    cfg = task.model_config(settings, cohort)
    model = EnsembleTransformer.from_seeds(cfg, [init_seed(task.name, m.coords["seed"]) for m in cohort.members])
    if args.init_std is not None:
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if not name.rsplit(".", 1)[-1].startswith("b"):
                    parameter.mul_(args.init_std / cfg.init_std)
    seeds = [data_seed(m.coords, task.name) for m in cohort.members]
    source, loss = task.batch_source(settings, cohort.members, seeds, args.batch)
    train_cfg = TrainConfig(max_steps=args.steps, batch_size=args.batch, lr=args.lr, warmup_steps=100, weight_decay=0.0,
                            device="cpu", log_every=100)
    start = time.perf_counter()
    result = train_ensemble(model, source, train_cfg, loss, model_names=[m.name for m in cohort.members], progress=False)
    gd_loss = expected_gd_loss(settings.dim, settings.n_context, expected_optimal_gd_step(settings.dim, settings.n_context))
    ratios = result.losses[:, -1] / gd_loss
    print(f"lr {args.lr:g}, {args.steps} steps, init std {args.init_std or cfg.init_std:.3g}, batch {args.batch} "
          f"({time.perf_counter() - start:.0f} s)")
    print("final training loss / one-step GD's, per seed:", np.round(ratios, 3).tolist())
    print(f"escaped: {int((ratios < ESCAPED).sum())}/{len(ratios)}")


if __name__ == "__main__":
    main()
