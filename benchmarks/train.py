"""Training throughput: the batched ensemble trainer against a plain per-model loop.

Measures, in one run on this machine: the fp32 matmul peak (large square sgemm), then for 24
one-head models (d_model 64, d_head 16, context 10, vocab 9) the model-steps/s and achieved
GFLOP/s of ``train_ensemble`` at batch 512 and 64, and of a loop that trains each model alone
with its own AdamW. FLOPs are counted analytically: forward matmul FLOPs, times 3 for
forward + backward. Every measurement is repeated in interleaved rounds and the best round is
reported, so that other processes on a shared machine distort the comparison less. The last
line is the speedup of the ensemble over the loop at batch 64.

    python benchmarks/train.py [--threads N] [--rounds R] [--compile]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from headshare.model import EnsembleTransformer, ModelConfig
from headshare.training import Batch, TrainConfig, loss_positions, make_optimizer, train_ensemble

N_MODELS = 24
CFG = ModelConfig(vocab_size=9, n_ctx=10, d_model=64, n_heads=1, d_head=16, d_out=9)
SEEDS = tuple(range(N_MODELS))


def forward_flops_per_sequence(cfg: ModelConfig) -> int:
    """FLOPs (2 per multiply-add) of the matmuls of one forward pass over n_ctx positions."""
    T, d, H, dh = cfg.n_ctx, cfg.d_model, cfg.n_heads, cfg.d_head
    embed = 0 if cfg.vocab_size is not None else 2 * T * cfg.input_dim * d
    attention = 2 * T * d * 3 * H * dh + 2 * 2 * H * T * T * dh + 2 * T * H * dh * d
    mlp = 2 * 2 * T * d * cfg.mlp_width if cfg.mlp else 0
    return embed + cfg.n_layers * (attention + mlp) + 2 * T * d * cfg.d_out


@dataclass(frozen=True)
class RandomTokens:
    """Uniform random tokens, fresh per (member, step): cheap, so the benchmark times training."""

    seeds: tuple[int, ...]
    batch_size: int

    def __call__(self, step: int) -> Batch:
        shape = (self.batch_size, CFG.n_ctx + 1)
        tokens = torch.stack(
            [
                torch.randint(
                    0, CFG.vocab_size, shape, generator=torch.Generator().manual_seed(seed * 100_003 + step)
                )
                for seed in self.seeds
            ]
        )
        return Batch(
            tokens[:, :, :-1].contiguous(), tokens[:, :, 1:].contiguous(), loss_positions(CFG.n_ctx, False)
        )


def matmul_peak(size: int = 2048, repeats: int = 3) -> Callable[[], float]:
    """A measurement returning sgemm GFLOP/s (best of ``repeats`` products)."""
    a, b = torch.randn(size, size), torch.randn(size, size)

    def measure() -> float:
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
        return 2 * size**3 / best / 1e9

    return measure


def ensemble_trainer(batch_size: int, steps: int, compile: bool = False) -> Callable[[], float]:
    """A measurement returning the model-steps/s of ``train_ensemble`` over ``steps`` steps."""
    source = RandomTokens(SEEDS, batch_size)
    model = EnsembleTransformer.from_seeds(CFG, SEEDS)
    names = [f"m{s}" for s in SEEDS]

    def run(n: int) -> float:
        cfg = TrainConfig(
            steps=n, batch_size=batch_size, warmup_steps=1, log_every=n, device="cpu", compile=compile
        )
        start = time.perf_counter()
        train_ensemble(model, source, cfg, "xent", model_names=names, progress=False)
        return N_MODELS * n / (time.perf_counter() - start)

    run(2)  # warm-up (and compilation)
    return lambda: run(steps)


def loop_trainer(batch_size: int, steps: int) -> Callable[[], float]:
    """A measurement returning the model-steps/s of training each model alone, one after another."""
    models = [EnsembleTransformer.from_seeds(CFG, [s]) for s in SEEDS]
    cfg = TrainConfig(max_steps=steps, batch_size=batch_size, device="cpu")
    optimizers = [make_optimizer(m, cfg) for m in models]
    batches = [[RandomTokens((s,), batch_size)(step) for s in SEEDS] for step in range(steps)]

    def run() -> float:
        start = time.perf_counter()
        for step in range(steps):
            for model, optimizer, batch in zip(models, optimizers, batches[step]):
                logits = model(batch.inputs)
                loss = F.cross_entropy(logits.reshape(-1, CFG.d_out), batch.targets.reshape(-1))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
        return N_MODELS * steps / (time.perf_counter() - start)

    run()  # warm-up
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved repetitions of every measurement")
    parser.add_argument("--compile", action="store_true", help="also measure the trainer with torch.compile")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}"
    )

    measurements: dict[tuple[str, int], Callable[[], float]] = {
        ("peak", 0): matmul_peak(),
        ("ensemble", 512): ensemble_trainer(512, steps=4),
        ("ensemble", 64): ensemble_trainer(64, steps=25),
        ("per-model loop", 512): loop_trainer(512, steps=1),
        ("per-model loop", 64): loop_trainer(64, steps=4),
    }
    if args.compile:
        measurements["compiled", 512] = ensemble_trainer(512, steps=4, compile=True)
        measurements["compiled", 64] = ensemble_trainer(64, steps=25, compile=True)
    best = {key: 0.0 for key in measurements}
    for _ in range(args.rounds):
        for key, measure in measurements.items():
            best[key] = max(best[key], measure())

    peak = best.pop(("peak", 0))
    print(f"fp32 matmul peak: {peak:.1f} GFLOP/s")
    train_flops = 3 * forward_flops_per_sequence(CFG)
    for (label, batch), model_steps in best.items():
        gflops = model_steps * batch * train_flops / 1e9
        print(
            f"{label:>14} batch {batch:>3}: {model_steps:7.1f} model-steps/s, "
            f"{gflops:5.1f} GFLOP/s ({100 * gflops / peak:4.1f}% of peak)"
        )
    print(f"speedup at batch 512: {best['ensemble', 512] / best['per-model loop', 512]:.1f}x")
    print(f"speedup: {best['ensemble', 64] / best['per-model loop', 64]:.1f}x")


if __name__ == "__main__":
    main()
