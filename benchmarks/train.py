"""Training throughput: the batched ensemble trainer against a plain per-model loop.

Measures, in one run on this machine: the fp32 matmul peak (large square sgemm), then for 24
one-head models (d_model 64, d_head 16, context 10, vocab 9) the model-steps/s and achieved
GFLOP/s of ``train_ensemble`` at batch 512 and 64, and of a loop that trains each model alone
with its own AdamW. FLOPs are counted analytically: forward matmul FLOPs, times 3 for
forward + backward. The last line is the speedup of the ensemble over the loop at batch 64.

    python benchmarks/train.py [--threads N] [--seconds S]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from headshare.model import EnsembleTransformer, ModelConfig
from headshare.training import Batch, TrainConfig, loss_positions, make_optimizer, train_ensemble

N_MODELS = 24
CFG = ModelConfig(vocab_size=9, n_ctx=10, d_model=64, n_heads=1, d_head=16, d_out=9)


def forward_flops_per_sequence(cfg: ModelConfig) -> int:
    """Multiply-add FLOPs (2 per MAC) of one forward pass over one sequence of n_ctx tokens."""
    T, d, H, dh = cfg.n_ctx, cfg.d_model, cfg.n_heads, cfg.d_head
    embed = 0 if cfg.vocab_size is not None else 2 * T * cfg.input_dim * d
    attention = 2 * T * d * 3 * H * dh + 2 * 2 * H * T * T * dh + 2 * T * H * dh * d
    mlp = 2 * 2 * T * d * cfg.mlp_width if cfg.mlp else 0
    return embed + cfg.n_layers * (attention + mlp) + 2 * T * d * cfg.d_out


def matmul_peak_gflops(seconds: float, size: int = 2048) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best


@dataclass(frozen=True)
class RandomTokens:
    """Uniform random tokens, fresh per (member, step): cheap, so the benchmark times training."""

    seeds: tuple[int, ...]
    batch_size: int

    def __call__(self, step: int) -> Batch:
        tokens = torch.stack(
            [
                torch.randint(0, CFG.vocab_size, (self.batch_size, CFG.n_ctx + 1), generator=torch.Generator().manual_seed(seed * 100_003 + step))
                for seed in self.seeds
            ]
        )
        return Batch(tokens[:, :, :-1].contiguous(), tokens[:, :, 1:].contiguous(), loss_positions(CFG.n_ctx, False))


def ensemble_steps_per_second(batch_size: int, steps: int, compile: bool = False) -> float:
    """Ensemble steps per second of ``train_ensemble`` (after a warm-up run, which also compiles)."""
    seeds = tuple(range(N_MODELS))
    source = RandomTokens(seeds, batch_size)
    model = EnsembleTransformer.from_seeds(CFG, seeds)
    names = [f"m{s}" for s in seeds]

    def run(n: int) -> float:
        cfg = TrainConfig(
            steps=n, batch_size=batch_size, warmup_steps=1, log_every=n, device="cpu", compile=compile
        )
        start = time.perf_counter()
        train_ensemble(model, source, cfg, "xent", model_names=names, progress=False)
        return time.perf_counter() - start

    run(3)
    return steps / run(steps)


def loop_steps_per_second(batch_size: int, steps: int) -> float:
    """Steps per second of every model, trained one after another as separate E=1 models."""
    seeds = tuple(range(N_MODELS))
    models = [EnsembleTransformer.from_seeds(CFG, [s]) for s in seeds]
    cfg = TrainConfig(steps=steps, batch_size=batch_size, device="cpu")
    optimizers = [make_optimizer(m, cfg) for m in models]
    sources = [RandomTokens((s,), batch_size) for s in seeds]

    def run(n: int) -> float:
        batches = [[src(step) for src in sources] for step in range(n)]
        start = time.perf_counter()
        for step in range(n):
            for model, optimizer, batch in zip(models, optimizers, batches[step]):
                logits = model(batch.inputs)
                loss = F.cross_entropy(logits.reshape(-1, CFG.d_out), batch.targets.reshape(-1))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
        return time.perf_counter() - start

    run(1)
    return steps / run(steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads")
    parser.add_argument("--seconds", type=float, default=3.0, help="time spent measuring the matmul peak")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile measurements")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")
    peak = matmul_peak_gflops(args.seconds)
    print(f"fp32 matmul peak: {peak:.1f} GFLOP/s")
    train_flops = 3 * forward_flops_per_sequence(CFG)
    rates = {}
    runs = [
        ("ensemble", 512, lambda: ensemble_steps_per_second(512, 12)),
        ("ensemble", 64, lambda: ensemble_steps_per_second(64, 80)),
        ("per-model loop", 512, lambda: loop_steps_per_second(512, 3)),
        ("per-model loop", 64, lambda: loop_steps_per_second(64, 10)),
    ]
    if not args.no_compile:
        runs += [
            ("compiled", 512, lambda: ensemble_steps_per_second(512, 12, compile=True)),
            ("compiled", 64, lambda: ensemble_steps_per_second(64, 80, compile=True)),
        ]
    for label, batch, measure in runs:
        steps_per_second = measure()
        model_steps = N_MODELS * steps_per_second
        gflops = model_steps * batch * train_flops / 1e9
        rates[label, batch] = model_steps
        print(
            f"{label:>14} batch {batch:>3}: {model_steps:8.1f} model-steps/s, "
            f"{gflops:6.1f} GFLOP/s ({100 * gflops / peak:4.1f}% of peak)"
        )
    print(f"speedup at batch 512: {rates['ensemble', 512] / rates['per-model loop', 512]:.1f}x")
    print(f"speedup: {rates['ensemble', 64] / rates['per-model loop', 64]:.1f}x")


if __name__ == "__main__":
    main()
