"""Sampling on the training device: counter-based streams and the torch product-HMM sampler, checked against
exact laws (scipy's own tests), run on the CPU through the same code path a GPU takes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import stats

from headshare.counter_rng import MASK32, hash32, stream_key, uniforms
from headshare.tasks.hmm.device_sampler import DeviceProductSampler
from headshare.tasks.hmm.processes import HMM, build_process
from headshare.tasks.hmm.source import HMMSource
from headshare.training import member_key

CPU = torch.device("cpu")
PAIR = (build_process("mess3", 0.7, 0.85), build_process("two_state", -0.7, 0.8))
P_FLOOR = 1e-4  # the tests below fail by chance at most this often


def test_hash_is_the_same_on_python_ints_and_int64_tensors_and_is_a_bijection():
    inputs = [0, 1, 2, 2**31 - 1, 2**31, MASK32, 123456789]
    assert [hash32(x) for x in inputs] == hash32(torch.tensor(inputs)).tolist()
    block = hash32(torch.arange(2**20, dtype=torch.int64))
    assert len(torch.unique(block)) == 2**20 and int(block.max()) <= MASK32 and int(block.min()) >= 0


def test_draws_are_uniform_and_a_stream_ignores_the_other_keys():
    keys = torch.tensor([stream_key(1, 2, 3), stream_key(1, 2, 4), stream_key(5)])
    draws = uniforms(keys, (50_000,))
    assert draws.dtype == torch.float32 and float(draws.min()) >= 0 and float(draws.max()) < 1
    for row in draws:
        assert stats.kstest(row.double().numpy(), "uniform").pvalue > P_FLOOR
    assert stats.pearsonr(draws[0].numpy(), draws[1].numpy()).pvalue > P_FLOOR  # neighbouring steps
    assert stats.pearsonr(draws[0, :-1].numpy(), draws[0, 1:].numpy()).pvalue > P_FLOOR  # neighbouring counters
    assert torch.equal(uniforms(keys[1:2], (50_000,))[0], draws[1])


def test_member_keys_differ_by_seed_and_step():
    keys = {member_key(seed, step) for seed, step in itertools.product(range(30), range(30))}
    assert len(keys) == 900
    with pytest.raises(ValueError, match="seed=-1"):
        member_key(-1, 0)


def pair_law(hmm: HMM) -> np.ndarray:
    """Exact P(x_t = k, x_t+1 = k') of a process at stationarity: pi^T T_k T_k' 1."""
    pi, T = hmm.stationary(), hmm.transitions
    ones = np.ones(hmm.n_states)
    return np.array([[pi @ T[k] @ T[j] @ ones for j in range(hmm.n_tokens)] for k in range(hmm.n_tokens)])


def test_consecutive_tokens_follow_the_exact_bigram_law_of_the_product():
    first, second = (pair_law(hmm) for hmm in PAIR)
    n2 = PAIR[1].n_tokens
    joint = np.einsum("ab,cd->acbd", first, second).reshape(first.shape[0] * n2, -1)  # tokens k1*n2+k2
    sampler = DeviceProductSampler([PAIR, PAIR], CPU)
    tokens = sampler(torch.tensor([stream_key(11), stream_key(12)]), 20_000, 6).numpy()
    for t in (0, 4):  # the start (stationary) and a later position
        pairs = tokens[:, :, t] * joint.shape[1] + tokens[:, :, t + 1]
        counts = np.bincount(pairs.ravel(), minlength=joint.size)
        expected = joint.ravel() * counts.sum()
        assert stats.chisquare(counts, expected).pvalue > P_FLOOR, t


def test_a_members_tokens_depend_on_its_own_key_and_process_alone():
    other = (build_process("mess3", 0.3, 0.6), build_process("two_state", 0.5, 0.6))  # same shape as PAIR
    keys = torch.tensor([stream_key(3), stream_key(4)])
    together = DeviceProductSampler([other, PAIR], CPU)(keys, 64, 8)
    alone = DeviceProductSampler([PAIR], CPU)(keys[1:], 64, 8)
    assert torch.equal(together[1], alone[0])
    assert not torch.equal(together[0], DeviceProductSampler([other], CPU)(keys[1:], 64, 8)[0])


def test_the_source_on_a_device_draws_the_same_batch_for_a_step_and_a_new_one_for_the_next():
    source = HMMSource(processes=[PAIR, PAIR], seeds=[0, 1], batch_size=32, n_ctx=6, last_only=[False, True],
                       device=CPU)
    batch, again, later = source(5), source(5), source(6)
    assert batch.inputs.shape == (2, 32, 6) and batch.inputs.dtype == torch.int64
    assert torch.equal(batch.inputs, again.inputs) and not torch.equal(batch.inputs, later.inputs)
    assert torch.equal(batch.targets[:, :, :-1], batch.inputs[:, :, 1:])
    assert batch.loss_positions.tolist() == [[True] * 6, [False] * 5 + [True]]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_draws_the_same_tokens_as_the_cpu():
    keys = torch.tensor([stream_key(21), stream_key(22)])
    on_cpu = DeviceProductSampler([PAIR, PAIR], CPU)(keys, 512, 11)
    on_gpu = DeviceProductSampler([PAIR, PAIR], torch.device("cuda"))(keys, 512, 11)
    assert torch.equal(on_cpu, on_gpu.cpu())


def test_readoff_on_a_device_follows_the_task_law():
    from headshare.tasks.readoff.device_sampler import sample_readoff_on
    from headshare.tasks.readoff.sampler import CLASS_PAIRS, N_SIGNAL, READOFF_TOKEN, pair_class

    n_seq, length = 40_000, 8
    tokens, labels = sample_readoff_on(torch.tensor([stream_key(31), stream_key(32)]), n_seq, length, CPU)
    tokens, labels = tokens.numpy(), labels.numpy()
    assert (tokens[:, :, -1] == READOFF_TOKEN).all()
    is_signal = tokens[:, :, :-1] < N_SIGNAL
    assert (is_signal.sum(axis=2) == 2).all()  # exactly two signal slots, distinct
    slots = np.argwhere(is_signal.reshape(-1, length - 1))[:, 1]
    assert stats.chisquare(np.bincount(slots, minlength=length - 1)).pvalue > P_FLOOR  # uniform slots
    noise = tokens[:, :, :-1][~is_signal]
    assert stats.chisquare(np.bincount(noise - N_SIGNAL)).pvalue > P_FLOOR  # uniform noise tokens
    pairs = tokens[:, :, :-1][is_signal].reshape(-1, 2)
    assert (pair_class(pairs[:, 0], pairs[:, 1]) == labels.ravel()).all()
    law = np.array([1 / 16 if a == b else 2 / 16 for a, b in CLASS_PAIRS])
    counts = np.bincount(labels.ravel(), minlength=len(CLASS_PAIRS))
    assert stats.chisquare(counts, law * counts.sum()).pvalue > P_FLOOR


def test_regression_on_a_device_follows_the_task_law():
    from headshare.tasks.regression.device_sampler import sample_regression_on

    d, n_context, n_tasks = 4, 6, 20_000
    tokens, targets = sample_regression_on(torch.tensor([stream_key(41)]), n_tasks, d, n_context, CPU)
    tokens, targets = tokens[0].double().numpy(), targets[0].double().numpy()
    assert tokens.shape == (n_tasks, n_context + 1, d + 1) and (tokens[:, -1, -1] == 0).all()
    x = tokens[:, :, :d]
    assert stats.kstest(x.ravel(), "uniform", args=(-0.5, 1.0)).pvalue > P_FLOOR
    # w is the exact least-squares solution of d noiseless context equations: recover it and test its law
    w = np.linalg.lstsq(x[0, :d], tokens[0, :d, -1], rcond=None)[0]
    np.testing.assert_allclose(x[0, -1] @ w, targets[0], rtol=1e-4, atol=1e-5)
    weights = np.stack([np.linalg.solve(x[t, :d], tokens[t, :d, -1]) for t in range(2000)])
    assert stats.kstest(weights.ravel(), "norm").pvalue > P_FLOOR
    assert stats.pearsonr(weights[:, 0], weights[:, 1]).pvalue > P_FLOOR
