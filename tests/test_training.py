"""Ensemble training: schedule, per-member independence, convergence, checkpoints, resume."""

import math
import types
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from headshare.checkpoint import (
    CheckpointMismatchError,
    load_ensemble,
    save_atomic,
    save_ensemble,
)
from headshare.cohort_training import convergence_record
from headshare.model import EnsembleTransformer, ModelConfig
from headshare.tasks.hmm.source import HMMSource
from headshare.tasks.readoff.source import ReadoffSource
from headshare.tasks.regression import source as regression_source
from headshare.tasks.regression.source import RegressionSource
from headshare.training import (
    Batch,
    NonFiniteLossError,
    Prefetcher,
    TrainConfig,
    clip_grad_norm_per_member,
    learning_rate,
    loss_positions,
    member_rng,
    per_member_loss,
    train_ensemble,
)


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: a second intra-op thread only adds synchronisation per op,
    which dominates (and varies wildly) when other processes share the cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


STAY = 0.8
TRANSITION = np.full((3, 3), (1 - STAY) / 2) + np.eye(3) * (STAY - (1 - STAY) / 2)
SMALL = ModelConfig(vocab_size=3, n_ctx=6, d_model=16, n_heads=1, d_head=4, d_out=3)


@dataclass(frozen=True)
class MarkovSource:
    """Stationary (uniform-start) chains of the symmetric 3-state Markov chain TRANSITION."""

    seeds: tuple[int, ...]
    batch_size: int
    n_ctx: int

    def __call__(self, step: int) -> Batch:
        chains = []
        for seed in self.seeds:
            rng = member_rng(seed, step)
            x = np.empty((self.batch_size, self.n_ctx + 1), dtype=np.int64)
            x[:, 0] = rng.integers(0, 3, self.batch_size)
            for t in range(self.n_ctx):
                u = rng.random(self.batch_size)[:, None]
                x[:, t + 1] = (u > np.cumsum(TRANSITION[x[:, t]], axis=1)).sum(1)
            chains.append(x)
        tokens = torch.from_numpy(np.stack(chains))
        return Batch(
            tokens[:, :, :-1].contiguous(), tokens[:, :, 1:].contiguous(), loss_positions(self.n_ctx, False)
        )


def entropy_rate() -> float:
    """H(X_{t+1} | X_t) under the uniform stationary law: every position's optimal loss."""
    return float(-(TRANSITION * np.log(TRANSITION)).sum(1).mean())


def test_learning_rate_schedule_closed_form():
    cfg = TrainConfig(max_steps=101, warmup_steps=10, lr=2e-3)
    assert learning_rate(0, cfg) == pytest.approx(2e-4)
    assert learning_rate(9, cfg) == pytest.approx(2e-3)
    assert learning_rate(10, cfg) == pytest.approx(2e-3)
    assert learning_rate(55, cfg) == pytest.approx(0.55 * 2e-3)  # cosine midpoint
    assert learning_rate(100, cfg) == pytest.approx(0.1 * 2e-3)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(max_steps=0), "max_steps"),
        (dict(max_steps=5, lr=0.0), "lr"),
        (dict(max_steps=5, betas=(0.9, 1.0)), "betas"),
        (dict(max_steps=5, grad_clip=-1.0), "grad_clip"),
        (dict(max_steps=5, device="tpu"), "device"),
    ],
)
def test_train_config_validation(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        TrainConfig(**kwargs)


def test_training_approaches_the_entropy_rate():
    source = MarkovSource((0, 1), batch_size=64, n_ctx=SMALL.n_ctx)
    model = EnsembleTransformer.from_seeds(SMALL, [0, 1])
    cfg = TrainConfig(max_steps=150, batch_size=64, lr=1e-2, warmup_steps=10, log_every=50, device="cpu")
    result = train_ensemble(model, source, cfg, "xent", model_names=["a", "b"], progress=False)
    assert result.losses.shape == (2, 3) and list(result.log_steps) == [50, 100, 150]
    h = entropy_rate()
    assert np.all(result.losses[:, 0] > h + 0.05)
    assert np.all(np.abs(result.losses[:, -1] - h) < 0.03), (result.losses, h)


def test_per_member_clipping_matches_torch_on_each_member():
    g = torch.Generator().manual_seed(0)
    shapes = [(3, 4, 5), (3, 7)]
    grads = [
        torch.randn(s, generator=g) * torch.tensor([0.01, 1.0, 30.0]).view(3, *[1] * (len(s) - 1))
        for s in shapes
    ]
    stacked = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    for p, grad in zip(stacked, grads):
        p.grad = grad.clone()
    clip_grad_norm_per_member(stacked, max_norm=0.5)
    for e in range(3):
        alone = [torch.nn.Parameter(torch.zeros(s[1:])) for s in shapes]
        for p, grad in zip(alone, grads):
            p.grad = grad[e].clone()
        torch.nn.utils.clip_grad_norm_(alone, max_norm=0.5)
        for p_one, p_ens in zip(alone, stacked):
            torch.testing.assert_close(p_ens.grad[e], p_one.grad)


def test_ensemble_training_equals_separate_plain_training():
    """Each member trained in the ensemble ends where a plain torch loop on it alone ends."""
    cfg = TrainConfig(
        max_steps=6, batch_size=16, lr=5e-3, warmup_steps=2, weight_decay=0.1, grad_clip=0.3, device="cpu"
    )
    seeds = (3, 4)
    source = MarkovSource(seeds, batch_size=16, n_ctx=SMALL.n_ctx)
    ensemble = EnsembleTransformer.from_seeds(SMALL, seeds)
    train_ensemble(ensemble, source, cfg, "xent", model_names=["a", "b"], progress=False)
    for e, seed in enumerate(seeds):
        model = EnsembleTransformer.from_seeds(SMALL, [seed])
        decay = [p for n, p in model.named_parameters() if n.split(".")[-1].startswith("W")]
        rest = [p for n, p in model.named_parameters() if not n.split(".")[-1].startswith("W")]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}], lr=5e-3
        )
        for step in range(cfg.max_steps):
            lr = (
                5e-3 * (step + 1) / 2
                if step < 2
                else 5e-4 + 4.5e-3 * 0.5 * (1 + math.cos(math.pi * (step - 2) / 3))
            )
            for group in opt.param_groups:
                group["lr"] = lr
            batch = MarkovSource((seed,), batch_size=16, n_ctx=SMALL.n_ctx)(step)
            loss = F.cross_entropy(model(batch.inputs)[0].reshape(-1, 3), batch.targets[0].reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.3)
            opt.step()
        trained = ensemble.member_state_dict(e)
        for name, value in model.member_state_dict(0).items():
            if name.endswith("b_QKV"):
                # The key bias shifts every score of a query equally, so softmax makes its true
                # gradient 0; Adam rescales the rounding noise left in its place. Skip it.
                trained[name], value = trained[name].view(3, -1)[[0, 2]], value.view(3, -1)[[0, 2]]
            torch.testing.assert_close(trained[name], value, msg=name)


def test_micro_batches_give_the_whole_batch_gradient():
    base = dict(max_steps=4, batch_size=16, lr=1e-2, warmup_steps=1, device="cpu")
    source = MarkovSource((1, 2), batch_size=16, n_ctx=SMALL.n_ctx)
    results = []
    for micro_batch in (16, 5):
        model = EnsembleTransformer.from_seeds(SMALL, [1, 2])
        curve = train_ensemble(
            model,
            source,
            TrainConfig(**base, micro_batch=micro_batch),
            "xent",
            model_names=["a", "b"],
            progress=False,
        )
        results.append((model, curve))
    (whole, whole_curve), (split, split_curve) = results
    np.testing.assert_allclose(split_curve.losses, whole_curve.losses, rtol=1e-5)
    for (name, a), (_, b) in zip(whole.named_parameters(), split.named_parameters()):
        if name.endswith("b_QKV"):  # key bias: see test_ensemble_training_equals_separate_plain_training
            a, b = a.view(2, 3, -1)[:, [0, 2]], b.view(2, 3, -1)[:, [0, 2]]
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


def test_failed_compile_falls_back_to_eager(monkeypatch):
    def broken_compile(model):
        def fail(*args, **kwargs):
            raise RuntimeError("no C++ compiler")

        return fail

    monkeypatch.setattr(torch, "compile", broken_compile)
    source = MarkovSource((1,), batch_size=8, n_ctx=SMALL.n_ctx)
    cfg = TrainConfig(max_steps=3, batch_size=8, warmup_steps=1, device="cpu")
    eager = EnsembleTransformer.from_seeds(SMALL, [1])
    train_ensemble(eager, source, cfg, "xent", model_names=["a"], progress=False)
    fallback = EnsembleTransformer.from_seeds(SMALL, [1])
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        train_ensemble(
            fallback,
            source,
            TrainConfig(**{**cfg.__dict__, "compile": True}),
            "xent",
            model_names=["a"],
            progress=False,
        )
    for a, b in zip(eager.parameters(), fallback.parameters()):
        assert torch.equal(a, b)


class Interrupt(Exception):
    pass


@dataclass(frozen=True)
class InterruptAt:
    source: MarkovSource
    step: int

    def __call__(self, step: int) -> Batch:
        if step == self.step:
            raise Interrupt
        return self.source(step)


def test_resume_after_interruption_is_bit_identical(tmp_path):
    cfg = TrainConfig(
        max_steps=20, batch_size=8, lr=1e-2, warmup_steps=3, log_every=3, checkpoint_every=4, device="cpu"
    )
    source = MarkovSource((5, 6), batch_size=8, n_ctx=SMALL.n_ctx)
    names = ["x", "y"]
    straight = EnsembleTransformer.from_seeds(SMALL, [5, 6])
    expected = train_ensemble(straight, source, cfg, "xent", model_names=names, progress=False)

    path = tmp_path / "run" / "ckpt.pt"
    with pytest.raises(Interrupt):
        first = EnsembleTransformer.from_seeds(SMALL, [5, 6])
        train_ensemble(
            first,
            InterruptAt(source, 13),
            cfg,
            "xent",
            model_names=names,
            progress=False,
            checkpoint_path=path,
        )
    assert torch.load(path, weights_only=True)["step"] == 12
    resumed = EnsembleTransformer.from_seeds(SMALL, [5, 6])
    result = train_ensemble(
        resumed, source, cfg, "xent", model_names=names, progress=False, checkpoint_path=path
    )
    for name, value in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name
    assert np.array_equal(result.log_steps, expected.log_steps)
    assert np.array_equal(result.losses, expected.losses)
    assert torch.load(path, weights_only=True)["step"] == 20

    with pytest.raises(CheckpointMismatchError, match="training settings"):
        other = TrainConfig(**{**cfg.__dict__, "lr": 2e-2})
        train_ensemble(
            resumed, source, other, "xent", model_names=names, progress=False, checkpoint_path=path
        )


@dataclass(frozen=True)
class NaNSource:
    bad_member: int
    bad_step: int

    def __call__(self, step: int) -> Batch:
        inputs = torch.ones(3, 4, 5, 2)
        if step == self.bad_step:
            inputs[self.bad_member, 0, 0, 0] = float("nan")
        return Batch(inputs, torch.zeros(3, 4), loss_positions(5, last_only=True))


def test_non_finite_loss_names_model_and_step():
    cfg = ModelConfig(input_dim=2, n_ctx=5, d_model=8, n_heads=1, d_head=2, d_out=1, attention="linear")
    model = EnsembleTransformer.from_seeds(cfg, [0, 1, 2])
    train_cfg = TrainConfig(max_steps=10, batch_size=4, device="cpu")
    with pytest.raises(NonFiniteLossError, match=r"step 3 .*'beta'") as info:
        train_ensemble(
            model, NaNSource(1, 3), train_cfg, "mse", model_names=["alpha", "beta", "gamma"], progress=False
        )
    assert "alpha" not in str(info.value) and "gamma" not in str(info.value)


def test_mse_loss_is_half_the_mean_squared_error_at_the_query():
    logits = torch.tensor([[[[9.0], [1.0]], [[9.0], [3.0]]]])  # [E=1, B=2, T=2, 1]
    batch = Batch(torch.zeros(1, 2, 2, 1), torch.tensor([[0.0, 1.0]]), loss_positions(2, last_only=True))
    assert per_member_loss(logits, batch, "mse").item() == pytest.approx(0.5 * (1.0 + 4.0) / 2)


def test_xent_loss_uses_only_the_loss_positions():
    logits = torch.zeros(1, 1, 3, 4)
    logits[0, 0, 2] = torch.tensor([0.0, math.log(3.0), 0.0, 0.0])
    batch = Batch(
        torch.zeros(1, 1, 3, dtype=torch.long), torch.tensor([[[0, 0, 1]]]), loss_positions(3, last_only=True)
    )
    assert per_member_loss(logits, batch, "xent").item() == pytest.approx(-math.log(3.0 / 6.0))


def test_checkpoint_round_trip_and_mismatch_errors(tmp_path):
    model = EnsembleTransformer.from_seeds(SMALL, [0, 1])
    path = tmp_path / "models.pt"
    save_ensemble(path, model, ["m0", "m1"])
    raw = torch.load(path, weights_only=True)
    assert raw["model_names"] == ["m0", "m1"]
    for name, value in model.state_dict().items():
        assert torch.equal(raw["model"][name], value), name
    loaded, names = load_ensemble(path, SMALL, n_members=2)
    assert names == ["m0", "m1"]
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name

    wider = ModelConfig(**{**SMALL.__dict__, "d_head": 8})
    with pytest.raises(CheckpointMismatchError, match=r"models\.pt.*d_head: expected 8, found 4"):
        load_ensemble(path, wider)
    raw["model"]["W_U"] = torch.zeros(2, 16, 5)
    save_atomic(raw, tmp_path / "bad.pt")
    with pytest.raises(
        CheckpointMismatchError, match=r"bad\.pt.*W_U: expected \(2, 16, 3\), found \(2, 16, 5\)"
    ):
        load_ensemble(tmp_path / "bad.pt", SMALL)
    with pytest.raises(CheckpointMismatchError, match="holds 2 members, expected 3"):
        load_ensemble(path, SMALL, n_members=3)


def test_prefetcher_returns_the_sources_batches():
    source = MarkovSource((1,), batch_size=4, n_ctx=5)
    with Prefetcher(source, end=10, depth=3) as batches:
        for step in (0, 1, 2, 7, 8, 3):
            assert torch.equal(batches(step).inputs, source(step).inputs)


def test_prefetcher_samples_on_one_thread_and_leaves_the_others_theirs():
    """The sampling thread must not start a thread team of its own beside the training step's."""
    before = torch.get_num_threads()
    counts = {}

    def source(step):
        counts[step] = torch.get_num_threads()
        return MarkovSource((1,), batch_size=2, n_ctx=3)(step)

    try:
        torch.set_num_threads(2)
        with Prefetcher(source, end=3) as batches:
            batches(0)
            batches(1)
        with ThreadPoolExecutor(max_workers=1) as pool:  # a thread started afterwards
            later = pool.submit(torch.get_num_threads).result()
        assert counts[1] == 1 and torch.get_num_threads() == 2 and later == 2
    finally:
        torch.set_num_threads(before)


def test_hmm_source_shifts_and_keeps_member_streams_independent():
    from headshare.tasks.hmm.processes import mess3

    first, second = (mess3(0.7, 0.85), mess3(0.3, 0.85)), (mess3(-0.3, 0.6), mess3(0.5, 0.9))
    cohort = HMMSource([first, second], seeds=[7, 9], batch_size=5, n_ctx=6)(step=2)
    alone = HMMSource([second], seeds=[9], batch_size=5, n_ctx=6)(step=2)
    assert cohort.inputs.shape == cohort.targets.shape == (2, 5, 6)
    assert torch.equal(cohort.inputs[:, :, 1:], cohort.targets[:, :, :-1])
    assert torch.equal(cohort.inputs[1], alone.inputs[0])
    assert cohort.loss_positions.all()
    assert not torch.equal(cohort.inputs[1], HMMSource([second], [9], 5, 6)(step=3).inputs[0])


def test_readoff_source_puts_the_label_at_the_readoff_position():
    from headshare.tasks.readoff.sampler import READOFF_TOKEN, sample_readoff

    batch = ReadoffSource(seeds=[4, 8], batch_size=6, n_ctx=10)(step=1)
    direct = sample_readoff(6, 10, member_rng(8, 1))
    assert torch.equal(batch.inputs[1], torch.from_numpy(direct.tokens))
    assert torch.equal(batch.targets[1, :, -1], torch.from_numpy(direct.labels))
    assert torch.all(batch.inputs[:, :, -1] == READOFF_TOKEN)
    assert batch.loss_positions.tolist() == [False] * 9 + [True]


def test_regression_source_shapes(monkeypatch):
    def sample_regression(n_tasks, d, n_context, rng):
        return types.SimpleNamespace(
            tokens=rng.normal(size=(n_tasks, n_context + 1, d + 1)), targets=rng.normal(size=n_tasks)
        )

    monkeypatch.setattr(regression_source, "sample_regression", sample_regression)
    batch = RegressionSource(seeds=[0, 1, 2], batch_size=4, d=10, n_context=10)(step=0)
    assert batch.inputs.shape == (3, 4, 11, 11) and batch.inputs.dtype == torch.float32
    assert batch.targets.shape == (3, 4) and batch.loss_positions.sum() == 1


def test_members_with_different_loss_positions_match_their_own_masks():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5, 3)
    targets = torch.randint(0, 3, (2, 4, 5))
    masks = torch.stack([loss_positions(5, last_only=False), loss_positions(5, last_only=True)])
    mixed = per_member_loss(logits, Batch(torch.zeros(2, 4, 5, dtype=torch.long), targets, masks), "xent")
    for member in range(2):
        alone = Batch(torch.zeros(1, 4, 5, dtype=torch.long), targets[member : member + 1], masks[member])
        expected = per_member_loss(logits[member : member + 1], alone, "xent")
        torch.testing.assert_close(mixed[member : member + 1], expected)
    by_hand = torch.nn.functional.cross_entropy(logits[1, :, -1], targets[1, :, -1])
    torch.testing.assert_close(mixed[1], by_hand)


# ------------------------------------------------------------------------------ convergence and early stop


def flat_evaluator(value: float):
    """An evaluator whose metric never moves: every member has converged as soon as the window is full."""

    def evaluate(model: EnsembleTransformer) -> dict[str, np.ndarray]:
        ones = np.ones(model.n_members)
        return {"metric": value * ones, "metric_se": 1e-4 * ones, "extra": np.zeros((model.n_members, 3))}

    return evaluate


def falling_evaluator():
    """A metric that halves every step a member trains: it never converges at tolerance 1e-3 early on."""
    calls = []

    def evaluate(model: EnsembleTransformer) -> dict[str, np.ndarray]:
        calls.append(1)
        ones = np.ones(model.n_members)
        return {"metric": ones / len(calls) ** 2, "metric_se": 1e-6 * ones}

    return evaluate


def convergence_config(**overrides) -> TrainConfig:
    settings = dict(max_steps=40, batch_size=8, warmup_steps=2, log_every=5, eval_every=2,
                    convergence_tolerance=1e-3, device="cpu")
    return TrainConfig(**{**settings, **overrides})


def test_training_stops_once_every_member_converged_and_not_before_min_steps():
    source = MarkovSource((1, 2), batch_size=8, n_ctx=SMALL.n_ctx)
    model = EnsembleTransformer.from_seeds(SMALL, [0, 1])
    result = train_ensemble(model, source, convergence_config(), "xent", model_names=["a", "b"],
                            evaluate=flat_evaluator(0.5), progress=False)
    # the window needs MIN_WINDOW evaluations: 4 evaluations every 2 steps
    assert result.steps == 8 and result.eval_steps.tolist() == [2, 4, 6, 8]
    assert all(test.converged for test in result.convergence)
    assert result.evaluations["extra"].shape == (2, 4, 3)
    model = EnsembleTransformer.from_seeds(SMALL, [0, 1])
    later = train_ensemble(model, source, convergence_config(min_steps=20), "xent", model_names=["a", "b"],
                           evaluate=flat_evaluator(0.5), progress=False)
    assert later.steps == 20


def test_a_falling_metric_trains_to_max_steps_unconverged():
    source = MarkovSource((1,), batch_size=8, n_ctx=SMALL.n_ctx)
    model = EnsembleTransformer.from_seeds(SMALL, [0])
    result = train_ensemble(model, source, convergence_config(max_steps=12), "xent", model_names=["a"],
                            evaluate=falling_evaluator(), progress=False)
    assert result.steps == 12 and result.eval_steps.tolist() == [2, 4, 6, 8, 10, 12]
    assert not result.convergence[0].converged


def test_a_run_resumed_after_it_stopped_stays_stopped(tmp_path: Path):
    source = MarkovSource((3,), batch_size=8, n_ctx=SMALL.n_ctx)
    cfg, checkpoint = convergence_config(checkpoint_every=4), tmp_path / "ckpt.pt"
    first = EnsembleTransformer.from_seeds(SMALL, [5])
    straight = train_ensemble(first, source, cfg, "xent", model_names=["a"], evaluate=flat_evaluator(0.25),
                              progress=False, checkpoint_path=checkpoint)
    again = EnsembleTransformer.from_seeds(SMALL, [5])
    resumed = train_ensemble(again, source, cfg, "xent", model_names=["a"], evaluate=flat_evaluator(0.25),
                             progress=False, checkpoint_path=checkpoint)
    assert resumed.steps == straight.steps == 8
    assert resumed.eval_steps.tolist() == straight.eval_steps.tolist()
    for name, tensor in first.state_dict().items():
        assert torch.equal(again.state_dict()[name], tensor)


# ------------------------------------------------------------------------------ per-member stopping

HELDOUT_STEP = 10**6  # a step no training run reaches: the held-out batch is no training batch


def heldout_evaluator(seeds: tuple[int, ...], drift: dict | None = None, calls_before: int = 0):
    """Each member's cross-entropy on a fixed held-out batch of its own chain (seeded by its data seed),
    plus ``drift[seed](n)`` at the n-th evaluation for members whose convergence a test delays. Pure in
    each member's own weights and seed, so a member's curve does not depend on its ensemble; a resumed run
    passes the evaluations it had already done as ``calls_before``."""
    batch = MarkovSource(seeds, batch_size=64, n_ctx=SMALL.n_ctx)(HELDOUT_STEP)
    drift = drift or {}
    calls = [calls_before]

    def evaluate(model: EnsembleTransformer) -> dict[str, np.ndarray]:
        calls[0] += 1
        metric = per_member_loss(model(batch.inputs), batch, "xent").double().numpy()
        metric += np.array([drift[seed](calls[0]) if seed in drift else 0.0 for seed in seeds])
        return {"metric": metric, "metric_se": np.full(len(seeds), 1e-3)}

    return evaluate


def converges_late(n: int) -> float:
    """A term falling 0.05 per evaluation until the 15th (step 30 at eval_every 2), flat after."""
    return 0.05 * max(0, 15 - n)


def never_converges(n: int) -> float:
    """A term falling ~2/n per doubling: faster than the tolerance through step 40."""
    return 3.0 / n


TARGET = 3  # the member whose stop the tests follow
COHORT = (4, TARGET, 5)  # 4 converges later than TARGET, 5 never
DRIFT = {4: converges_late, 5: never_converges}


def stopping_config(**overrides) -> TrainConfig:
    return convergence_config(lr=2e-2, convergence_tolerance=0.05, **overrides)


def train_members(seeds: tuple[int, ...], cfg: TrainConfig, evaluate, **kwargs):
    model = EnsembleTransformer.from_seeds(SMALL, list(seeds))
    source = kwargs.pop("source", MarkovSource(seeds, batch_size=cfg.batch_size, n_ctx=SMALL.n_ctx))
    result = train_ensemble(
        model, source, cfg, "xent", model_names=[f"m{s}" for s in seeds], evaluate=evaluate, progress=False,
        **kwargs,
    )
    return model, result


def test_a_member_stops_where_it_stops_alone_whatever_its_cohort():
    cfg = stopping_config()
    alone_model, alone = train_members((TARGET,), cfg, heldout_evaluator((TARGET,)))
    model, result = train_members(COHORT, cfg, heldout_evaluator(COHORT, DRIFT))
    stop = alone.steps
    assert cfg.min_steps < stop < cfg.max_steps and alone.member_steps.tolist() == [stop]
    index = COHORT.index(TARGET)
    # the cohort runs on: one member converges later, one never
    assert result.steps == cfg.max_steps
    assert stop < result.member_steps[0] < cfg.max_steps and result.member_steps[2] == cfg.max_steps
    assert result.member_steps[index] == stop
    assert result.convergence[index].converged and not result.convergence[2].converged
    assert result.convergence[index].window_start == alone.convergence[0].window_start
    assert result.convergence[index].plateau == pytest.approx(alone.convergence[0].plateau, abs=1e-6)

    eval_steps, evaluations = result.member_evaluations(index)
    assert eval_steps.tolist() == alone.eval_steps.tolist() == list(range(2, stop + 1, 2))
    np.testing.assert_allclose(evaluations["metric"], alone.evaluations["metric"][0], rtol=0, atol=1e-6)
    for member, own_stop in enumerate(result.member_steps):  # each curve ends at its own stop
        own = result.eval_steps <= own_stop
        assert np.isfinite(result.evaluations["metric"][member, own]).all()
        assert np.isnan(result.evaluations["metric"][member, ~own]).all()
    assert (result.eval_steps > stop).any()

    record = convergence_record(result, index)  # what the member's training.json keeps
    assert record["steps_trained"] == stop and record["eval_steps"] == alone.eval_steps.tolist()
    assert record["converged"] and record["plateau"] == pytest.approx(alone.convergence[0].plateau, abs=1e-6)
    np.testing.assert_allclose(record["evaluations"]["metric"], alone.evaluations["metric"][0], rtol=0, atol=1e-6)

    log_steps, losses = result.member_losses(index)
    assert log_steps.tolist() == alone.log_steps.tolist() and log_steps[-1] == stop
    np.testing.assert_allclose(losses, alone.losses[0], rtol=0, atol=1e-6)
    assert np.isnan(result.losses[index, result.log_steps > stop]).all()

    for name, value in alone_model.member_state_dict(0).items():
        assert torch.allclose(model.member_state_dict(index)[name], value, rtol=0, atol=1e-6), name


def recording(evaluate, snapshots: dict):
    """``evaluate``, keeping a copy of the parameters at every evaluation, by step (eval_every 2)."""

    def record(model: EnsembleTransformer) -> dict[str, np.ndarray]:
        snapshots[2 * (len(snapshots) + 1)] = {n: p.detach().clone() for n, p in model.named_parameters()}
        return evaluate(model)

    return record


def test_a_frozen_member_keeps_the_parameters_of_its_stop_step():
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    cfg = stopping_config()
    model, result = train_members(COHORT, cfg, recording(heldout_evaluator(COHORT, DRIFT), snapshots))
    index = COHORT.index(TARGET)
    stop = int(result.member_steps[index])
    assert stop < cfg.max_steps and sorted(snapshots) == list(range(2, cfg.max_steps + 1, 2))
    final = dict(model.named_parameters())
    for name, at_stop in snapshots[stop].items():
        assert not torch.equal(snapshots[stop - 2][name][index], at_stop[index]), name  # it trained until then
        for step in range(stop, cfg.max_steps + 1, 2):
            assert torch.equal(snapshots[step][name][index], at_stop[index]), (name, step)
        assert torch.equal(final[name][index], at_stop[index]), name
    # the members still training kept moving
    assert not torch.equal(final["W_U"][2], snapshots[stop]["W_U"][2])


def test_resume_between_member_stops_is_bit_identical(tmp_path: Path):
    cfg = stopping_config(checkpoint_every=4)
    straight_model, straight = train_members(COHORT, cfg, heldout_evaluator(COHORT, DRIFT))
    first_stop, later_stop = straight.member_steps[COHORT.index(TARGET)], straight.member_steps[0]
    saved = (first_stop // 4 + 1) * 4  # the first checkpoint after TARGET stopped
    assert first_stop < saved < later_stop

    path = tmp_path / "ckpt.pt"
    source = MarkovSource(COHORT, batch_size=cfg.batch_size, n_ctx=SMALL.n_ctx)
    with pytest.raises(Interrupt):
        train_members(COHORT, cfg, heldout_evaluator(COHORT, DRIFT), source=InterruptAt(source, saved + 1),
                      checkpoint_path=path)
    payload = torch.load(path, weights_only=True)
    assert payload["step"] == saved
    assert payload["member_stops"].tolist() == [-1, first_stop, -1]
    resumed_model, resumed = train_members(
        COHORT, cfg, heldout_evaluator(COHORT, DRIFT, calls_before=saved // cfg.eval_every), checkpoint_path=path
    )
    for name, value in straight_model.state_dict().items():
        assert torch.equal(resumed_model.state_dict()[name], value), name
    assert resumed.steps == straight.steps
    assert resumed.member_steps.tolist() == straight.member_steps.tolist()
    assert np.array_equal(resumed.log_steps, straight.log_steps)
    assert np.array_equal(resumed.losses, straight.losses, equal_nan=True)
    assert np.array_equal(resumed.eval_steps, straight.eval_steps)
    for name, values in straight.evaluations.items():
        assert np.array_equal(resumed.evaluations[name], values, equal_nan=True), name
    np.testing.assert_equal([astuple(c) for c in resumed.convergence], [astuple(c) for c in straight.convergence])
