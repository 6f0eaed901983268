"""Training throughput: the batched ensemble trainer against a plain per-model loop, and at the pipeline's shape.

Measures, in one run on one device: the fp32 matmul peak (large square sgemm), then
- the benchmark shape: 24 one-head models (d_model 64, d_head 16, context 10, vocab 9), ``train_ensemble``
  at batch 512 and 64 against a loop that trains each model alone with its own AdamW;
- the default pipeline's hmm shape: one cohort of 5 seeds (d_model 32, d_head 8, context 10, vocab 9,
  batch 256) with 1 and with 3 heads, in this process on all its threads, and as the pipeline runs its training
  jobs (config.yaml ``threads: auto``): one one-thread trainer per core, side by side in separate processes,
  their model-steps/s summed;
- the two groupings (headshare.grouping) of the default pipeline's hmm family, cohorts of 1, 2 and 3 heads
  (5 seeds each): each cohort as its own ensemble, one after another (``grouping: cohort``), against all 15
  models as one ensemble with the narrower members' extra heads masked (``grouping: family``). FLOPs count
  each model's own heads only, so the family's masked heads are overhead, not throughput.
Each line gives model-steps/s and the achieved GFLOP/s as a fraction of the measured peak. FLOPs are
counted analytically: forward matmul FLOPs, times 3 for forward + backward. Every measurement is repeated
in interleaved rounds and the best round is reported, so that other processes on a shared machine distort
the comparison less. Like the pipeline's jobs, the process keeps freed memory (headshare.allocator). The
last line is the speedup of the ensemble over the loop at batch 64.

    python benchmarks/train.py [--device cpu|cuda] [--threads N] [--rounds R] [--compile]
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.synchronize
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from headshare.allocator import keep_freed_memory
from headshare.mixed_ensemble import head_mask
from headshare.model import EnsembleTransformer, ModelConfig, init_member_state, with_heads
from headshare.training import Batch, TrainConfig, loss_positions, make_optimizer, resolve_device, train_ensemble

N_MODELS = 24
CFG = ModelConfig(vocab_size=9, n_ctx=10, d_model=64, n_heads=1, d_head=16, d_out=9)
SEEDS = tuple(range(N_MODELS))
PIPELINE_SEEDS = tuple(range(5))  # a default hmm cohort: one grid point's five seeds
PIPELINE_BATCH = 256
FAMILY_HEADS = (1, 2, 3)  # the default config's hmm n_heads


def pipeline_shape(n_heads: int) -> ModelConfig:
    """The default config's hmm model (config.yaml: model.d_model, hmm.context, grid.d_head)."""
    return ModelConfig(vocab_size=9, n_ctx=10, d_model=32, n_heads=n_heads, d_head=8, d_out=9)


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
    cfg: ModelConfig = CFG

    def __call__(self, step: int) -> Batch:
        shape = (self.batch_size, self.cfg.n_ctx + 1)
        tokens = torch.stack(
            [
                torch.randint(
                    0, self.cfg.vocab_size, shape, generator=torch.Generator().manual_seed(seed * 100_003 + step)
                )
                for seed in self.seeds
            ]
        )
        return Batch(
            tokens[:, :, :-1].contiguous(), tokens[:, :, 1:].contiguous(), loss_positions(self.cfg.n_ctx, False)
        )


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, repeats: int = 3) -> Callable[[], float]:
    """A measurement returning sgemm GFLOP/s (best of ``repeats`` products)."""
    size = 8192 if device.type == "cuda" else 2048
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)

    def measure() -> float:
        best = float("inf")
        for _ in range(repeats):
            synchronize(device)
            start = time.perf_counter()
            a @ b
            synchronize(device)
            best = min(best, time.perf_counter() - start)
        return 2 * size**3 / best / 1e9

    return measure


def ensemble_trainer(
    device: torch.device, batch_size: int, steps: int, compile: bool = False, cfg: ModelConfig = CFG,
    seeds: tuple[int, ...] = SEEDS,
) -> Callable[[], float]:
    """A measurement returning the model-steps/s of ``train_ensemble`` over ``steps`` steps."""
    source = RandomTokens(seeds, batch_size, cfg)
    model = EnsembleTransformer.from_seeds(cfg, seeds)
    names = [f"m{s}" for s in seeds]

    def run(n: int) -> float:
        train_cfg = TrainConfig(
            max_steps=n, batch_size=batch_size, warmup_steps=1, log_every=n, device=device.type, compile=compile
        )
        synchronize(device)
        start = time.perf_counter()
        train_ensemble(model, source, train_cfg, "xent", model_names=names, progress=False)
        synchronize(device)
        return len(seeds) * n / (time.perf_counter() - start)

    run(2)  # warm-up (and compilation)
    return lambda: run(steps)


def family_trainer(device: torch.device, steps: int, family: bool) -> Callable[[], float]:
    """A measurement returning the model-steps/s of the pipeline's 1-, 2- and 3-head cohorts (5 seeds each):
    as one masked ensemble (``family``), or one cohort after another."""
    shapes = [pipeline_shape(heads) for heads in FAMILY_HEADS]
    if not family:
        cohorts = [
            ensemble_trainer(device, PIPELINE_BATCH, steps, cfg=cfg, seeds=PIPELINE_SEEDS) for cfg in shapes
        ]
        per_cohort_seconds = lambda: sum(len(PIPELINE_SEEDS) * steps / measure() for measure in cohorts)  # noqa: E731
        return lambda: len(shapes) * len(PIPELINE_SEEDS) * steps / per_cohort_seconds()
    widest = shapes[-1]
    configs = [cfg for cfg in shapes for _ in PIPELINE_SEEDS]
    states = [
        with_heads(init_member_state(cfg, seed), cfg, widest.n_heads) for cfg in shapes for seed in PIPELINE_SEEDS
    ]
    model = EnsembleTransformer.from_members(widest, states)
    seeds = tuple(range(len(states)))
    source = RandomTokens(seeds, PIPELINE_BATCH, widest)
    mask = head_mask(configs, widest)

    def run(n: int) -> float:
        train_cfg = TrainConfig(max_steps=n, batch_size=PIPELINE_BATCH, warmup_steps=1, log_every=n, device=device.type)
        synchronize(device)
        start = time.perf_counter()
        names = [f"m{s}" for s in seeds]
        train_ensemble(model, source, train_cfg, "xent", model_names=names, progress=False, head_mask=mask)
        synchronize(device)
        return len(seeds) * n / (time.perf_counter() - start)

    run(2)
    return lambda: run(steps)


class SideBySide:
    """One one-thread trainer of a cohort per process, ``n_jobs`` processes started together every round: the
    machine's throughput when ``snakemake --cores N`` runs N one-thread training jobs."""

    def __init__(self, device: torch.device, n_jobs: int, steps: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.n_jobs, self.steps, self.device = n_jobs, steps, device
        self.pool = context.Pool(n_jobs, initializer=_join_side_by_side, initargs=(context.Barrier(n_jobs),))

    def measurement(self, heads: int) -> Callable[[], float]:
        job = (self.device.type, heads, self.steps)
        return lambda: sum(self.pool.map(_side_by_side_round, [job] * self.n_jobs, chunksize=1))

    def close(self) -> None:
        self.pool.close()
        self.pool.join()


_barrier = None
_trainers: dict[tuple[str, int, int], Callable[[], float]] = {}


def _join_side_by_side(barrier: multiprocessing.synchronize.Barrier) -> None:
    global _barrier
    _barrier = barrier
    torch.set_num_threads(1)
    keep_freed_memory()


def _side_by_side_round(job: tuple[str, int, int]) -> float:
    """One worker's model-steps/s over one round, started with the other workers' (the trainer is built and
    warmed once per worker and shape)."""
    if job not in _trainers:
        device, heads, steps = job
        _trainers[job] = ensemble_trainer(
            torch.device(device), PIPELINE_BATCH, steps, cfg=pipeline_shape(heads), seeds=PIPELINE_SEEDS
        )
    _barrier.wait()
    return _trainers[job]()


def loop_trainer(device: torch.device, batch_size: int, steps: int) -> Callable[[], float]:
    """A measurement returning the model-steps/s of training each model alone, one after another."""
    models = [EnsembleTransformer.from_seeds(CFG, [s]).to(device) for s in SEEDS]
    cfg = TrainConfig(max_steps=steps, batch_size=batch_size, device=device.type)
    optimizers = [make_optimizer(m, cfg) for m in models]
    batches = [[RandomTokens((s,), batch_size)(step).to(device) for s in SEEDS] for step in range(steps)]

    def run() -> float:
        synchronize(device)
        start = time.perf_counter()
        for step in range(steps):
            for model, optimizer, batch in zip(models, optimizers, batches[step]):
                logits = model(batch.inputs)
                loss = F.cross_entropy(logits.reshape(-1, CFG.d_out), batch.targets.reshape(-1))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
        synchronize(device)
        return N_MODELS * steps / (time.perf_counter() - start)

    run()  # warm-up
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch intra-op threads")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved repetitions of every measurement")
    parser.add_argument("--compile", action="store_true", help="also measure the trainer with torch.compile")
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count(), help="one-thread trainers side by side (0: do not measure)"
    )
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    kept = keep_freed_memory()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(
        f"torch {torch.__version__}, {device.type} ({where}), load average {os.getloadavg()[0]:.2f}, "
        f"freed memory kept: {kept}"
    )

    measurements: dict[tuple[str, int], Callable[[], float]] = {
        ("peak", 0): matmul_peak(device),
        ("ensemble", 512): ensemble_trainer(device, 512, steps=4),
        ("ensemble", 64): ensemble_trainer(device, 64, steps=25),
        ("per-model loop", 512): loop_trainer(device, 512, steps=1),
        ("per-model loop", 64): loop_trainer(device, 64, steps=4),
    }
    shape_of = {key: CFG for key in measurements}
    side_by_side = SideBySide(device, args.jobs, steps=40) if args.jobs and device.type == "cpu" else None
    for heads in (1, 3):
        label = f"pipeline, {heads} head{'s' if heads > 1 else ''}"
        shape_of[label, PIPELINE_BATCH] = pipeline_shape(heads)
        measurements[label, PIPELINE_BATCH] = ensemble_trainer(
            device, PIPELINE_BATCH, steps=20, cfg=pipeline_shape(heads), seeds=PIPELINE_SEEDS
        )
        if side_by_side is not None:
            jobs_label = f"{label}, {args.jobs} x 1 thread"
            shape_of[jobs_label, PIPELINE_BATCH] = pipeline_shape(heads)
            measurements[jobs_label, PIPELINE_BATCH] = side_by_side.measurement(heads)
    family_flops = sum(forward_flops_per_sequence(pipeline_shape(h)) for h in FAMILY_HEADS) / len(FAMILY_HEADS)
    for label, masked in (("cohort by cohort", False), ("family, masked", True)):
        measurements[label, PIPELINE_BATCH] = family_trainer(device, steps=20, family=masked)
    if args.compile:
        measurements["compiled", 512] = ensemble_trainer(device, 512, steps=4, compile=True)
        measurements["compiled", 64] = ensemble_trainer(device, 64, steps=25, compile=True)
        shape_of["compiled", 512] = shape_of["compiled", 64] = CFG
    best = {key: 0.0 for key in measurements}
    for _ in range(args.rounds):
        for key, measure in measurements.items():
            best[key] = max(best[key], measure())
    if side_by_side is not None:
        side_by_side.close()

    peak = best.pop(("peak", 0))
    print(f"fp32 matmul peak: {peak:.1f} GFLOP/s")
    for (label, batch), model_steps in best.items():
        flops = forward_flops_per_sequence(shape_of[label, batch]) if (label, batch) in shape_of else family_flops
        gflops = model_steps * batch * 3 * flops / 1e9
        print(
            f"{label:>30} batch {batch:>3}: {model_steps:8.1f} model-steps/s, "
            f"{gflops:6.1f} GFLOP/s ({100 * gflops / peak:4.1f}% of peak)"
        )
    family_gain = best["family, masked", PIPELINE_BATCH] / best["cohort by cohort", PIPELINE_BATCH]
    print(f"hmm family (1-3 heads) as one masked ensemble: {family_gain:.2f}x cohort by cohort")
    print(f"speedup at batch 512: {best['ensemble', 512] / best['per-model loop', 512]:.1f}x")
    print(f"speedup: {best['ensemble', 64] / best['per-model loop', 64]:.1f}x")


if __name__ == "__main__":
    main()
