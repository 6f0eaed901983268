"""Training an ensemble of models at once, on data drawn fresh every step.

The loss that is backpropagated is the SUM over members of each member's mean loss, so member
e's gradient is exactly the gradient of its own loss. AdamW is elementwise, hence one optimizer
over the stacked parameters is the same as one optimizer per member; gradient clipping is done
per member by hand (``clip_grad_norm_per_member``). The learning rate warms up linearly, then
follows a cosine from ``lr`` down to ``FINAL_LR_FRACTION * lr`` at the last step: decaying
lets attention patterns settle once the loss has.

On CPU each step runs as micro-batches (gradients summed over them) so that activations stay
in cache; ``compile=True`` wraps the model in ``torch.compile`` (minutes of compile time per
shape on a small CPU, repaid on long runs), falling back to eager execution if that fails.

Data are infinite: a ``BatchSource`` draws new sequences every step from generators seeded by
(member seed, step) alone. Nothing is cached, so a model cannot overfit a fixed set; a member's
stream does not depend on its cohort; and a source needs no saved state to resume, which is
what makes a resumed run bit-identical (on CPU) to an uninterrupted one.

Stopping is per member. With an evaluator and a ``convergence_tolerance``, every member is evaluated
every ``eval_every`` steps; from ``min_steps`` on, a member whose own evaluation curve passes the
convergence test is frozen: its parameters are written back after every later optimizer step, so its
final weights are its weights at that step, and its evaluations and training losses end there (NaN
after). The cohort stops once every member is frozen, or at ``max_steps``. A member's weights, curves and
stop step therefore depend on its own coordinates only, not on which members share its ensemble: a
member frozen at step s ends exactly where it would have ended trained alone (up to the rounding of
batched arithmetic), whether its cohort-mates converge sooner, later or never.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from headshare.analysis.convergence import Convergence, convergence
from headshare.checkpoint import (
    CheckpointMismatchError,
    check_model_state,
    load_payload,
    save_atomic,
)
from headshare.counter_rng import stream_key
from headshare.flat_adamw import FlatAdamW
from headshare.model import EnsembleTransformer

LOSSES = ("xent", "mse")
DEVICES = ("auto", "cpu", "cuda")
FINAL_LR_FRACTION = 0.1
TRAIN_CHECKPOINT_FORMAT = "headshare.train-checkpoint/3"
CPU_MICRO_BATCH = 256
# Settings that change speed (and float rounding) but not the optimisation problem: a run
# may resume under different values.
EXECUTION_SETTINGS = ("device", "micro_batch", "compile")
# Mixed into every training generator's seed so training streams never coincide with other
# streams seeded by the same (seed, step) integers, such as evaluation sets.
TRAIN_STREAM = 0x747261696E  # "train"


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimisation settings shared by every member of a cohort."""

    max_steps: int
    batch_size: int = 512
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = 1.0
    log_every: int = 50
    checkpoint_every: int = 500
    device: Literal["auto", "cpu", "cuda"] = "auto"
    micro_batch: int | None = None
    compile: bool = False
    eval_every: int = 100
    convergence_tolerance: float | None = None  # None: train all max_steps; else each member stops once converged
    min_steps: int = 0  # no member stops before: a plateau before a late drop (e.g. a phase transition) is no end

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "log_every", "checkpoint_every", "eval_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an integer >= 0, got {self.warmup_steps!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0 or None, got {self.grad_clip!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if not isinstance(self.min_steps, int) or not 0 <= self.min_steps <= self.max_steps:
            raise ValueError(f"min_steps must be an integer in [0, max_steps={self.max_steps}], got {self.min_steps!r}")
        if self.convergence_tolerance is not None and not self.convergence_tolerance > 0:
            raise ValueError(f"convergence_tolerance must be > 0 or None, got {self.convergence_tolerance!r}")
        if self.micro_batch is not None and (not isinstance(self.micro_batch, int) or self.micro_batch < 1):
            raise ValueError(f"micro_batch must be an integer >= 1 or None, got {self.micro_batch!r}")

    def micro_batch_on(self, device: torch.device) -> int:
        """Sequences per forward/backward pass: ``micro_batch`` if set, else CPU_MICRO_BATCH
        on CPU (activations of a few MiB stay in cache) and the whole batch on CUDA."""
        if self.micro_batch is not None:
            return self.micro_batch
        return CPU_MICRO_BATCH if device.type == "cpu" else self.batch_size


@dataclass(frozen=True)
class Batch:
    """One training step's data for every member.

    inputs: [E, B, T] int64 tokens, or [E, B, T, input_dim] float.
    targets: [E, B, T] int64 classes (next token, or a label at the loss positions and
        anything elsewhere), or [E, B] float regression targets for the one loss position.
    loss_positions: [T] bool, True where a position's prediction carries loss; or [E, T]
        when members differ (e.g. next-token loss at every position for some, at the last for others).
    """

    inputs: Tensor
    targets: Tensor
    loss_positions: Tensor

    def to(self, device: torch.device) -> Batch:
        return Batch(
            self.inputs.to(device, non_blocking=True),
            self.targets.to(device, non_blocking=True),
            self.loss_positions.to(device),
        )

    def shared_positions(self) -> Tensor | None:
        """The loss positions as indices [P] when every member has the same ones; None when they differ."""
        mask = self.loss_positions
        if mask.dim() == 2:
            if not bool((mask == mask[:1]).all()):
                return None
            mask = mask[0]
        return mask.nonzero().squeeze(1)

    def split(self, size: int) -> list[Batch]:
        """Consecutive slices of at most ``size`` sequences (along dim 1)."""
        return [
            Batch(inputs, targets, self.loss_positions)
            for inputs, targets in zip(self.inputs.split(size, dim=1), self.targets.split(size, dim=1))
        ]


class BatchSource(Protocol):
    """Returns the batch for a training step. It must be a pure function of ``step`` (fresh
    samples from generators seeded by member seed and step), so steps can be drawn ahead of
    time on another thread and a resumed run sees the same data."""

    def __call__(self, step: int) -> Batch: ...


def member_rng(seed: int, step: int) -> np.random.Generator:
    """The generator for one member's training data at one step."""
    if seed < 0 or step < 0:
        raise ValueError(f"seed and step must be >= 0, got seed={seed}, step={step}")
    return np.random.default_rng((TRAIN_STREAM, seed, step))


def member_key(seed: int, step: int) -> int:
    """The counter-based stream key (headshare.counter_rng) of one member's training data at one step: what
    a source that samples on the training device draws from instead of :func:`member_rng`."""
    if seed < 0 or step < 0:
        raise ValueError(f"seed and step must be >= 0, got seed={seed}, step={step}")
    return stream_key(TRAIN_STREAM, seed, step)


def member_keys(seeds: Sequence[int], step: int) -> Tensor:
    """[E] int64: every member's stream key at one step (see :func:`member_key`)."""
    return torch.tensor([member_key(seed, step) for seed in seeds], dtype=torch.int64)


def sampling_device(device: str) -> torch.device | None:
    """Where a batch source draws for training on ``device`` (a TrainConfig.device value): on the GPU when
    training runs there, so it never waits for host tokens; None on a CPU, where the host (numpy) samplers
    are as fast and draw on the prefetch thread."""
    resolved = resolve_device(device)
    return resolved if resolved.type == "cuda" else None


def loss_positions(n_ctx: int, last_only: bool) -> Tensor:
    """[n_ctx] bool mask: every position, or the last one only."""
    mask = torch.zeros(n_ctx, dtype=torch.bool)
    mask[-1 if last_only else slice(None)] = True
    return mask


def per_member(draw: Callable[[int, np.random.Generator], Any], seeds: Sequence[int], step: int) -> list:
    return [draw(index, member_rng(seed, step)) for index, seed in enumerate(seeds)]


def _sample_on_one_thread() -> None:
    """The prefetch thread's initializer: one intra-op thread. Its sampling overlaps the training step,
    and a thread team of its own would compete with the step's for the same cores (2 cores, 15 members
    per ensemble: steps 1.4-1.5x slower)."""
    torch.get_num_threads()  # torch sets a new thread's count lazily, from the process default: now
    torch.set_num_threads(1)


class Prefetcher:
    """Draws the next ``depth`` steps' batches on a background thread while the current step
    trains, so sampling does not stall the optimiser. Valid because sources are pure in step."""

    def __init__(self, source: BatchSource, end: int, depth: int = 2) -> None:
        self.source, self.end, self.depth = source, end, depth
        threads = torch.get_num_threads()
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="batch-prefetch", initializer=_sample_on_one_thread
        )
        self._executor.submit(int).result()  # the initializer has run, and set the process default too:
        torch.set_num_threads(threads)  # restore that (this thread keeps its count)
        self._pending: dict[int, Future[Batch]] = {}

    def __call__(self, step: int) -> Batch:
        for stale in [s for s in self._pending if s < step]:
            self._pending.pop(stale).cancel()
        future = self._pending.pop(step, None)
        for ahead in range(step + 1, min(step + 1 + self.depth, self.end)):
            if ahead not in self._pending:
                self._pending[ahead] = self._executor.submit(self.source, ahead)
        return future.result() if future is not None else self.source(step)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


Evaluator = Callable[[EnsembleTransformer], dict[str, np.ndarray]]
"""Evaluates every member on a fixed held-out batch: "metric" and "metric_se" [E] (the convergence metric,
lower is better, and its standard error), and any further curves [E, ...] worth keeping."""


@dataclass(frozen=True)
class TrainResult:
    """Training curves: ``losses[e, i]`` is member e's mean training loss over its steps that ended at
    ``log_steps[i]``; ``evaluations[name][e, j]`` is the evaluator's ``name`` for member e after
    ``eval_steps[j]`` steps. ``steps`` is how many steps the cohort's loop ran; ``member_steps[e]`` how many
    member e trained: the step at which it was frozen (see the module docstring), else ``steps``. A member's
    entries after its own stop are NaN, and ``log_steps`` also holds each frozen member's stop step where a
    logging window was open then (that member's last, partial window; NaN for the others), so that
    ``member_losses(e)`` and ``member_evaluations(e)`` are exactly the curves member e would have had trained
    alone. ``convergence[e]`` is the convergence test on member e's own curve up to its stop (None without
    an evaluator and a tolerance)."""

    model_names: list[str]
    log_steps: np.ndarray  # [n_log] int
    losses: np.ndarray  # [E, n_log] float, NaN where member e has no entry
    steps: int = 0
    eval_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    evaluations: dict[str, np.ndarray] = field(default_factory=dict)
    convergence: list[Convergence] | None = None
    member_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # [E] int

    def member_losses(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Member ``index``'s own training-loss curve: (log steps, window means), its NaN entries (after its
        stop, or another member's partial window) left out. The last mean is its final training loss."""
        own = np.isfinite(self.losses[index])
        return self.log_steps[own], self.losses[index, own]

    def member_evaluations(self, index: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Member ``index``'s own evaluation curves, up to and including its stop: (steps, name -> [n, ...])."""
        own = self.eval_steps <= self.member_steps[index]
        return self.eval_steps[own], {name: values[index, own] for name, values in self.evaluations.items()}


class NonFiniteLossError(FloatingPointError):
    """A member's training loss became NaN or infinite."""


def resolve_device(device: str) -> torch.device:
    """The torch device for a ``TrainConfig.device`` value: "auto" is cuda if available, else cpu."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' requested but CUDA is not available")
    return torch.device(device)


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Learning rate at (0-based) ``step``: linear warmup to ``lr`` over ``warmup_steps``,
    then a cosine from ``lr`` to ``FINAL_LR_FRACTION * lr``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - 1 - cfg.warmup_steps)
    final = FINAL_LR_FRACTION * cfg.lr
    return final + (cfg.lr - final) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def per_member_loss(logits: Tensor, batch: Batch, loss: str) -> Tensor:
    """Mean loss over batch and loss positions, one value per member: [E].

    "xent": cross-entropy of logits [E, B, T, C] against targets [E, B, T].
    "mse": 0.5 * squared error of the scalar prediction logits[..., 0] at the single loss
    position against targets [E, B].
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    selected = batch.shared_positions()
    if selected is None:
        return _masked_cross_entropy(logits, batch.targets, batch.loss_positions, loss)
    if len(selected) < logits.shape[2]:
        logits = logits.index_select(2, selected)
    if loss == "xent":
        targets = (
            batch.targets
            if len(selected) == batch.targets.shape[2]
            else batch.targets.index_select(2, selected)
        )
        return F.cross_entropy(logits.permute(0, 3, 1, 2), targets, reduction="none").mean((1, 2))
    if logits.shape[2] != 1 or logits.shape[3] != 1:
        raise ValueError(f"mse needs d_out=1 and one loss position, got logits {tuple(logits.shape)}")
    return 0.5 * (logits[:, :, 0, 0] - batch.targets).square().mean(1)


def _masked_cross_entropy(logits: Tensor, targets: Tensor, mask: Tensor, loss: str) -> Tensor:
    """Per-member mean cross-entropy over each member's own loss positions (mask [E, T])."""
    if loss != "xent":
        raise ValueError("mse needs one loss position shared by every member")
    per_position = F.cross_entropy(logits.permute(0, 3, 1, 2), targets, reduction="none")  # [E, B, T]
    weights = mask.to(per_position.dtype)
    return (per_position * weights[:, None, :]).sum((1, 2)) / (per_position.shape[1] * weights.sum(1))


def clip_grad_norm_per_member(params: Sequence[Tensor], max_norm: float) -> Tensor:
    """Scale each member's gradient (the slices [e] of every parameter) so that its global
    norm is at most ``max_norm``, as ``torch.nn.utils.clip_grad_norm_`` would on that member
    alone. Returns the per-member norms before clipping: [E]."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch.linalg.vector_norm(torch.cat([g.flatten(1) for g in grads], dim=1), dim=1)
    scale = (max_norm / (norms + 1e-6)).clamp_(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *[1] * (g.dim() - 1)))
    return norms


def make_optimizer(model: EnsembleTransformer, cfg: TrainConfig) -> FlatAdamW:
    """AdamW with weight decay on weight matrices and embeddings (stacked: >= 3 dims) only,
    not on biases or LayerNorm gains."""
    params = list(model.parameters())
    groups = [
        {"params": [p for p in params if p.dim() >= 3], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.dim() < 3], "weight_decay": 0.0},
    ]
    return FlatAdamW(groups, lr=cfg.lr, betas=cfg.betas)


def train_ensemble(
    model: EnsembleTransformer,
    source: BatchSource,
    cfg: TrainConfig,
    loss: Literal["xent", "mse"],
    *,
    model_names: Sequence[str],
    evaluate: Evaluator | None = None,
    progress: bool = True,
    checkpoint_path: str | os.PathLike | None = None,
    head_mask: Tensor | None = None,
) -> TrainResult:
    """Train every member of ``model`` in place for at most ``cfg.max_steps`` steps.

    With ``evaluate``, every member is evaluated every ``cfg.eval_every`` steps and at the end; with a
    ``cfg.convergence_tolerance`` as well, each member is frozen (stops training) at the first evaluation
    from ``cfg.min_steps`` on where its own curve passes the convergence test
    (headshare.analysis.convergence), and training ends once every member is frozen. Each member stops on
    its own curve, so that its artifacts do not depend on the other members of its cohort. With
    ``checkpoint_path``, state (frozen members included) is saved every ``cfg.checkpoint_every`` steps and
    at the end, and training resumes from that file if it exists. Raises ``NonFiniteLossError`` naming the
    member(s) and the step as soon as the loss of a member still training is NaN or infinite. ``head_mask``
    [E, n_layers, n_heads] multiplies every head's output in every forward pass: members of fewer heads
    train in a wider ensemble with their extra heads masked to zero (headshare.grouping).
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    names = list(model_names)
    if len(names) != model.n_members:
        raise ValueError(f"need one name per member ({model.n_members}), got {len(names)}")
    device = resolve_device(cfg.device)
    model.to(device)
    forward = _CompiledOrEager(model) if cfg.compile else model
    if head_mask is not None:
        forward = functools.partial(forward, head_mask=head_mask.to(device))
    micro_batch = cfg.micro_batch_on(device)
    optimizer = make_optimizer(model, cfg)
    params = list(model.parameters())
    curve = _Curve(model.n_members, device)
    evaluations = _Evaluations()
    frozen = _Frozen(params, model.n_members, device)
    start = 0
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        start = _resume(checkpoint_path, model, optimizer, curve, evaluations, frozen, cfg, names, device)
    if frozen.everyone():  # a resumed run that had already stopped stays stopped
        return curve.result(names, evaluations, frozen, cfg, start)

    bar = tqdm(
        total=cfg.max_steps, initial=start, desc=f"{model.n_members} models", unit="step", disable=not progress,
        mininterval=0.1 if sys.stderr.isatty() else 30.0,  # a log file gets a line every 30 s, not every step
    )
    done = start
    postfix: dict[str, str] = {}
    with Prefetcher(source, end=cfg.max_steps) as batches, bar:
        for step in range(start, cfg.max_steps):
            batch = batches(step).to(device)
            if batch.inputs.shape[1] != cfg.batch_size:
                raise ValueError(
                    f"source gave batch size {batch.inputs.shape[1]}, config says {cfg.batch_size}"
                )
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, cfg)
            optimizer.zero_grad(set_to_none=True)
            losses = _backward(forward, batch, loss, micro_batch)
            _check_finite(losses, names, step, frozen.mask)
            if cfg.grad_clip is not None:
                clip_grad_norm_per_member(params, cfg.grad_clip)
            optimizer.step()
            frozen.restore()
            curve.add(losses.detach(), frozen.mask)
            done = step + 1
            last = done == cfg.max_steps
            if done % cfg.log_every == 0 or last:
                postfix["loss"] = f"{torch.nanmean(curve.close_window(done, frozen.mask)).item():.4f}"
                bar.set_postfix(postfix, refresh=False)
            if evaluate is not None and (done % cfg.eval_every == 0 or last):
                evaluations.add(done, _evaluated(model, evaluate), frozen.stopped())
                newly = evaluations.converged_members(cfg, done, frozen.stopped())
                if newly:
                    frozen.freeze(newly, done)
                    curve.close_members(done, newly)
                    postfix["frozen"] = f"{frozen.count()}/{model.n_members}"  # no line per member: a count
                    bar.set_postfix(postfix, refresh=False)
            stop = frozen.everyone()
            if checkpoint_path is not None and (done % cfg.checkpoint_every == 0 or last or stop):
                _save(checkpoint_path, model, optimizer, curve, evaluations, frozen, cfg, names, done)
            bar.update(1)
            if stop:
                print(f"every model converged after {done} steps (max_steps {cfg.max_steps})")
                break
    return curve.result(names, evaluations, frozen, cfg, done)


@torch.no_grad()
def _evaluated(model: EnsembleTransformer, evaluate: Evaluator) -> dict[str, np.ndarray]:
    model.eval()
    try:
        return {name: np.asarray(values, dtype=np.float64) for name, values in evaluate(model).items()}
    finally:
        model.train()


class _Evaluations:
    """Every evaluation so far: steps and, per evaluator output, one [E, ...] array per step (NaN for
    members that were frozen before that step)."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.values: dict[str, list[np.ndarray]] = {}

    def add(self, step: int, values: dict[str, np.ndarray], stopped: np.ndarray) -> None:
        """Record the evaluation after ``step`` steps; members ``stopped`` (bool [E]) get NaN: their curves
        ended at their own stop."""
        missing = {"metric", "metric_se"} - set(values)
        if missing:
            raise ValueError(f"an evaluator must return {sorted(missing)}")
        self.steps.append(step)
        for name, array in values.items():
            if stopped.any():
                array = array.astype(np.float64, copy=True)
                array[stopped] = np.nan
            self.values.setdefault(name, []).append(array)

    def stacked(self) -> dict[str, np.ndarray]:
        """name -> [E, n_eval, ...]"""
        return {name: np.stack(arrays, axis=1) for name, arrays in self.values.items()}

    def member_convergence(self, member: int, until: int, tolerance: float) -> Convergence:
        """The convergence test on member ``member``'s own curve: its evaluations up to step ``until``."""
        n = int(np.searchsorted(self.steps, until, side="right"))
        steps = np.asarray(self.steps[:n], dtype=np.float64)
        metric = np.array([array[member] for array in self.values["metric"][:n]], dtype=np.float64)
        error = np.array([array[member] for array in self.values["metric_se"][:n]], dtype=np.float64)
        return convergence(steps, metric, error, tolerance)

    def converged_members(self, cfg: TrainConfig, done: int, stopped: np.ndarray) -> list[int]:
        """The members still training (not ``stopped``) that stop after ``done`` steps: past min_steps,
        with their own curve (up to ``done``) converged."""
        tolerance = cfg.convergence_tolerance
        if tolerance is None or not self.steps or done < cfg.min_steps:
            return []
        return [
            member
            for member in np.flatnonzero(~stopped).tolist()
            if self.member_convergence(member, done, tolerance).converged
        ]

    def state(self) -> dict[str, Any]:
        return {
            "eval_steps": torch.tensor(self.steps, dtype=torch.int64),
            "eval_values": {name: torch.from_numpy(array) for name, array in self.stacked().items()},
        }

    def load(self, state: dict[str, Any]) -> None:
        self.steps = state["eval_steps"].tolist()
        self.values = {
            name: list(np.moveaxis(array.cpu().numpy(), 1, 0)) for name, array in state["eval_values"].items()
        }


def _backward(forward: Callable[..., Tensor], batch: Batch, loss: str, micro_batch: int) -> Tensor:
    """Backpropagate the sum over members of each member's mean loss, micro-batch by
    micro-batch (each weighted by its share of the batch); returns the losses [E]. When every member's
    loss reads the same few positions, the model computes its logits there only."""
    total = None
    positions = batch.shared_positions()
    queries = positions if positions is not None and len(positions) < batch.inputs.shape[2] else None
    for part in batch.split(micro_batch):
        share = part.inputs.shape[1] / batch.inputs.shape[1]
        part_losses = per_member_loss(forward(part.inputs, queries=queries), part, loss) * share
        part_losses.sum().backward()
        total = part_losses.detach() if total is None else total + part_losses.detach()
    return total


class _CompiledOrEager:
    """``torch.compile(model)``, or the model itself once compiling has failed (no compiler,
    unsupported platform), with a warning."""

    def __init__(self, model: EnsembleTransformer) -> None:
        self.model = model
        self.compiled: Callable[[Tensor], Tensor] | None = torch.compile(model)

    def __call__(self, inputs: Tensor, **kwargs: Tensor) -> Tensor:
        if self.compiled is not None:
            try:
                return self.compiled(inputs, **kwargs)
            except Exception as error:  # compiler failures come in many types
                warnings.warn(f"torch.compile failed, training eagerly instead: {error}", RuntimeWarning)
                self.compiled = None
        return self.model(inputs, **kwargs)


class _Frozen:
    """Members that stopped training: the step each stopped at (-1 while it trains), and a copy of the
    stopped members' parameter slices, written back after every optimizer step so they never change."""

    def __init__(self, params: list[Tensor], n_members: int, device: torch.device) -> None:
        self.params = params
        self.at = np.full(n_members, -1, dtype=np.int64)
        self.mask = torch.zeros(n_members, dtype=torch.bool, device=device)  # the stopped members
        self._index: Tensor | None = None
        self._saved: list[Tensor] = []

    def stopped(self) -> np.ndarray:
        return self.at >= 0

    def count(self) -> int:
        return int(self.stopped().sum())

    def everyone(self) -> bool:
        return bool(self.stopped().all())

    def freeze(self, members: list[int], step: int) -> None:
        """Stop ``members`` after ``step`` steps, at their current parameters."""
        self.at[members] = step
        self._snapshot()

    @torch.no_grad()
    def _snapshot(self) -> None:
        # Members stopped earlier were restored after the last step, so copying them again is exact.
        index = np.flatnonzero(self.stopped())
        self.mask = torch.from_numpy(self.stopped()).to(self.mask.device)
        if len(index) == 0:
            self._index, self._saved = None, []
            return
        self._index = torch.from_numpy(index).to(self.mask.device)
        self._saved = [p.detach().index_select(0, self._index).clone() for p in self.params]

    @torch.no_grad()
    def restore(self) -> None:
        """Write the stopped members' parameters back (after an optimizer step moved them)."""
        if self._index is None:
            return
        for param, saved in zip(self.params, self._saved):
            param.index_copy_(0, self._index, saved)

    def member_steps(self, steps: int) -> np.ndarray:
        """[E] steps each member trained, when the loop ran ``steps``."""
        return np.where(self.stopped(), self.at, steps)

    def state(self) -> dict[str, Any]:
        return {"member_stops": torch.from_numpy(self.at.copy())}

    def load(self, state: dict[str, Any]) -> None:
        """Stopped members stay stopped at the parameters just loaded (those they stopped with)."""
        self.at = state["member_stops"].cpu().numpy().astype(np.int64)
        self._snapshot()


class _Curve:
    """Running per-member loss sums, averaged into one log entry every ``log_every`` steps. A frozen
    member's window is closed early at its stop step (an entry of its own, NaN for the others) and it gets
    NaN from then on, so each member's curve is the one it would have trained alone."""

    def __init__(self, n_members: int, device: torch.device) -> None:
        self.window_sum = torch.zeros(n_members, device=device)
        self.window_count = 0
        self.steps: list[int] = []
        self.means: list[Tensor] = []

    def add(self, losses: Tensor, stopped: Tensor) -> None:
        self.window_sum += losses.masked_fill(stopped, 0.0)
        self.window_count += 1

    def close_window(self, done: int, stopped: Tensor) -> Tensor:
        """Log the window ending after ``done`` steps: [E] means, NaN for ``stopped`` members."""
        mean = (self.window_sum / self.window_count).masked_fill(stopped, float("nan"))
        self.steps.append(done)
        self.means.append(mean)
        self.window_sum = torch.zeros_like(self.window_sum)
        self.window_count = 0
        return mean

    def close_members(self, done: int, members: list[int]) -> None:
        """Close the open window of ``members``, which stop after ``done`` steps, as a log entry at ``done``
        of their own (the others' windows stay open: NaN there)."""
        if not self.window_count:
            return
        index = torch.tensor(members, device=self.window_sum.device)
        mean = torch.full_like(self.window_sum, float("nan"))
        mean[index] = self.window_sum[index] / self.window_count
        self.window_sum[index] = 0.0
        self.steps.append(done)
        self.means.append(mean)

    def state(self) -> dict[str, Any]:
        return {
            "log_steps": torch.tensor(self.steps, dtype=torch.int64),
            "log_losses": (
                torch.stack(self.means) if self.means else self.window_sum.new_zeros(0, len(self.window_sum))
            ),
            "window_sum": self.window_sum,
            "window_count": self.window_count,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.steps = state["log_steps"].tolist()
        self.means = list(state["log_losses"].to(self.window_sum.device))
        self.window_sum = state["window_sum"].to(self.window_sum.device)
        self.window_count = state["window_count"]

    def result(
        self, names: list[str], evaluations: _Evaluations, frozen: _Frozen, cfg: TrainConfig, steps: int
    ) -> TrainResult:
        losses = torch.stack(self.means, dim=1) if self.means else torch.zeros(len(names), 0)
        tolerance = cfg.convergence_tolerance
        member_steps = frozen.member_steps(steps)
        return TrainResult(
            names,
            np.asarray(self.steps, dtype=np.int64),
            losses.cpu().numpy(),
            steps=steps,
            eval_steps=np.asarray(evaluations.steps, dtype=np.int64),
            evaluations=evaluations.stacked() if evaluations.steps else {},
            convergence=(
                [evaluations.member_convergence(e, int(until), tolerance) for e, until in enumerate(member_steps)]
                if evaluations.steps and tolerance
                else None
            ),
            member_steps=member_steps,
        )


def _check_finite(losses: Tensor, names: list[str], step: int, stopped: Tensor) -> None:
    """Raise if a member still training has a non-finite loss (a frozen member's loss is not used)."""
    if bool(torch.isfinite(losses).all()):
        return
    bad = (~torch.isfinite(losses) & ~stopped).nonzero().squeeze(1).tolist()
    if bad:
        listed = ", ".join(f"{names[i]!r} (loss {losses[i].item()})" for i in bad)
        raise NonFiniteLossError(f"non-finite training loss at step {step} for model(s) {listed}")


def _comparable(cfg: TrainConfig) -> dict[str, Any]:
    """The settings a resumed run must share with the saved one."""
    settings = asdict(cfg)
    for name in EXECUTION_SETTINGS:
        settings.pop(name)
    settings["betas"] = tuple(settings["betas"])
    return settings


def _save(
    path: str | os.PathLike,
    model: EnsembleTransformer,
    optimizer: torch.optim.Optimizer,
    curve: _Curve,
    evaluations: _Evaluations,
    frozen: _Frozen,
    cfg: TrainConfig,
    names: list[str],
    done: int,
) -> None:
    save_atomic(
        {
            "format": TRAIN_CHECKPOINT_FORMAT,
            "model_config": asdict(model.cfg),
            "train_config": _comparable(cfg),
            "model_names": names,
            "step": done,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            **curve.state(),
            **evaluations.state(),
            **frozen.state(),
        },
        path,
    )


def _resume(
    path: str | os.PathLike,
    model: EnsembleTransformer,
    optimizer: torch.optim.Optimizer,
    curve: _Curve,
    evaluations: _Evaluations,
    frozen: _Frozen,
    cfg: TrainConfig,
    names: list[str],
    device: torch.device,
) -> int:
    """Load a training checkpoint into model, optimizer, curve, evaluations and the frozen members;
    returns the steps done."""
    payload = load_payload(path, map_location=device)
    if payload.get("format") != TRAIN_CHECKPOINT_FORMAT:
        raise CheckpointMismatchError(
            f"checkpoint {path} has format {payload.get('format')!r}, expected {TRAIN_CHECKPOINT_FORMAT!r}"
        )
    check_model_state(path, model.cfg, payload["model_config"], payload["model"], model.n_members)
    if payload["model_names"] != names:
        raise CheckpointMismatchError(
            f"checkpoint {path} was trained for models {payload['model_names']}, not {names}"
        )
    saved = {k: tuple(v) if isinstance(v, list) else v for k, v in payload["train_config"].items()}
    if saved != _comparable(cfg):
        raise CheckpointMismatchError(
            f"checkpoint {path} was written with training settings {saved}, not {_comparable(cfg)}"
        )
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    curve.load(payload)
    evaluations.load(payload)
    frozen.load(payload)
    return payload["step"]
