"""Throughput of the vectorised product sampler against a straightforward per-sequence Python sampler.

Both draw the product of Mess3(0.7, 0.85) and Mess3(0.3, 0.85) with tokens, hidden states and exact filter
beliefs, in the same run. Also measured: training tokens alone (no beliefs) for an ensemble of
``TRAINING_MEMBERS`` members, by the host (numpy) sampler and by the torch sampler on ``--device``.
Like the pipeline's jobs, the benchmark keeps freed memory in the process (headshare.allocator), which both
samplers see. Usage: ``python benchmarks/sampler.py [--device cpu|cuda]``. The last line is
``speedup: <N>x`` (tokens per second, vectorised over per-sequence).
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np
import torch

from headshare.allocator import keep_freed_memory
from headshare.tasks.hmm.device_sampler import DeviceProductSampler
from headshare.tasks.hmm.processes import HMM, mess3
from headshare.tasks.hmm.sampler import sample_product, sample_product_tokens
from headshare.training import member_keys, member_rng, resolve_device

LENGTH = 11
VECTORISED_SEQUENCES = 20_000
PER_SEQUENCE_SEQUENCES = 1_000
REPEATS = 5
TRAINING_MEMBERS, TRAINING_BATCH = 64, 1024


def _draw(gen: random.Random, probabilities: list[float]) -> int:
    """Inverse-CDF draw of one index, the textbook way."""
    u, total = gen.random(), 0.0
    for index, probability in enumerate(probabilities):
        total += probability
        if u < total:
            return index
    return len(probabilities) - 1


class PythonProcess:
    """A process as nested Python lists, converted once so the per-token loop touches no numpy."""

    def __init__(self, hmm: HMM) -> None:
        self.n_tokens, self.n_states = hmm.n_tokens, hmm.n_states
        self.matrices = hmm.transitions.tolist()
        self.stationary = hmm.stationary().tolist()
        # Per state, the joint outcome (token k, next state j) probabilities in the order k*m + j.
        self.outcomes = [[p for matrix in self.matrices for p in matrix[i]] for i in range(self.n_states)]

    def sample(self, gen: random.Random) -> tuple[list[int], list[int], list[list[float]]]:
        """One sequence, token by token, with its filter beliefs."""
        belief = self.stationary
        state = _draw(gen, belief)
        tokens, states, beliefs = [], [], []
        for _ in range(LENGTH):
            token, state = divmod(_draw(gen, self.outcomes[state]), self.n_states)
            matrix = self.matrices[token]
            new = [sum(belief[i] * matrix[i][j] for i in range(self.n_states)) for j in range(self.n_states)]
            norm = sum(new)
            belief = [value / norm for value in new]
            tokens.append(token)
            states.append(state)
            beliefs.append(belief)
        return tokens, states, beliefs


def per_sequence_product(p1: HMM, p2: HMM, n_seq: int, seed: int) -> list:
    """Reference implementation: a Python loop over sequences and positions, joined factor by factor."""
    gen = random.Random(seed)
    first, second = PythonProcess(p1), PythonProcess(p2)
    sequences = []
    for _ in range(n_seq):
        tokens1, states1, beliefs1 = first.sample(gen)
        tokens2, states2, beliefs2 = second.sample(gen)
        sequences.append(
            (
                [k1 * p2.n_tokens + k2 for k1, k2 in zip(tokens1, tokens2)],
                [s1 * p2.n_states + s2 for s1, s2 in zip(states1, states2)],
                [[x * y for x in b1 for y in b2] for b1, b2 in zip(beliefs1, beliefs2)],
            )
        )
    return sequences


def _seconds(sample) -> float:
    start = time.perf_counter()
    sample()
    return time.perf_counter() - start


def training_tokens_per_second(p1: HMM, p2: HMM, device: torch.device) -> tuple[float, float]:
    """Best-of-REPEATS tokens/s of one training step's tokens for TRAINING_MEMBERS members: (host, device)."""
    pairs, seeds = [(p1, p2)] * TRAINING_MEMBERS, list(range(TRAINING_MEMBERS))
    on_device = DeviceProductSampler(pairs, device)

    def host() -> None:
        sample_product_tokens(pairs, TRAINING_BATCH, LENGTH, [member_rng(seed, 0) for seed in seeds])

    def drawn_on_device() -> None:
        on_device(member_keys(seeds, 0), TRAINING_BATCH, LENGTH)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    drawn_on_device()  # warm-up
    tokens = TRAINING_MEMBERS * TRAINING_BATCH * LENGTH
    return tuple(tokens / min(_seconds(draw) for _ in range(REPEATS)) for draw in (host, drawn_on_device))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the torch sampler draws")
    device = resolve_device(parser.parse_args().device)
    kept = keep_freed_memory()
    p1, p2 = mess3(0.7, 0.85), mess3(0.3, 0.85)
    rng = np.random.default_rng(0)
    best_vectorised = best_per_sequence = float("inf")
    # Interleaved repeats, best of each: both sides see the same machine load.
    for _ in range(REPEATS):
        best_vectorised = min(
            best_vectorised, _seconds(lambda: sample_product(p1, p2, VECTORISED_SEQUENCES, LENGTH, rng))
        )
        best_per_sequence = min(
            best_per_sequence, _seconds(lambda: per_sequence_product(p1, p2, PER_SEQUENCE_SEQUENCES, seed=0))
        )
    vectorised = VECTORISED_SEQUENCES * LENGTH / best_vectorised
    per_sequence = PER_SEQUENCE_SEQUENCES * LENGTH / best_per_sequence
    host, on_device = training_tokens_per_second(p1, p2, device)
    print(f"process: {p1.name} x {p2.name}, length {LENGTH}, best of {REPEATS}, freed memory kept: {kept}")
    print(f"training tokens, {TRAINING_MEMBERS} members x {TRAINING_BATCH} sequences, host numpy: {host:,.0f} tokens/s")
    print(f"training tokens, {TRAINING_MEMBERS} members x {TRAINING_BATCH} sequences, torch on {device}: "
          f"{on_device:,.0f} tokens/s")
    print(f"vectorised sample_product ({VECTORISED_SEQUENCES} sequences): {vectorised:,.0f} tokens/s")
    print(f"per-sequence Python ({PER_SEQUENCE_SEQUENCES} sequences): {per_sequence:,.0f} tokens/s")
    print(f"speedup: {vectorised / per_sequence:.0f}x")


if __name__ == "__main__":
    main()
