"""How many steps the cohorts of a config need to converge: the measurement behind the default max_steps.

Trains every cohort of the chosen tasks to --max-steps without stopping early, recording each model's
held-out evaluation curve every eval_every steps, then applies the convergence test
(headshare.analysis.convergence) at every evaluation to find the first step at which each model passes, for
each tolerance given. Prints one line per cohort, then per task the share of models converged by each step;
--json writes every curve. Cohorts run in --jobs processes (one thread each).

    python benchmarks/convergence_steps.py --tasks hmm --max-steps 6000 --device cuda --jobs 8
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

PROJECT = Path(__file__).resolve().parents[1]


def load(config_files: list[str], max_steps: int, device: str) -> dict:
    from headshare.config import validate_config

    config: dict = {}
    for path in config_files:
        config = merge(config, yaml.safe_load(Path(path).read_text()))
    config["device"] = device
    for section in config["training"].values():
        section["max_steps"] = max_steps
        section.pop("min_steps", None)
    return validate_config(config)


def merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = merge(base[key], value) if isinstance(value, dict) and key in base else value
    return merged


def first_converged(steps: np.ndarray, metric: np.ndarray, error: np.ndarray, tolerance: float) -> int | None:
    """The first evaluation step at which the convergence test passes on the curve so far."""
    from headshare.analysis.convergence import convergence

    for end in range(1, len(steps) + 1):
        if convergence(steps[:end], metric[:end], error[:end], tolerance).converged:
            return int(steps[end - 1])
    return None


def train_one(job: tuple[dict, str, str]) -> dict:
    import torch

    from headshare import tasks
    from headshare.model import EnsembleTransformer
    from headshare.cohort_training import data_seed, init_seed
    from headshare.training import train_ensemble

    torch.set_num_threads(1)
    config, task_name, cohort_name = job
    task, settings = tasks.configured(config, task_name)
    cohort = task.find_cohort(settings, cohort_name)
    train_config = replace(settings.train_config(), convergence_tolerance=None)
    seeds = [data_seed(member.coords, task.name) for member in cohort.members]
    source, loss = task.batch_source(settings, cohort.members, seeds, train_config.batch_size)
    model = EnsembleTransformer.from_seeds(
        task.model_config(settings, cohort), [init_seed(task.name, m.coords["seed"]) for m in cohort.members]
    )
    start = time.perf_counter()
    result = train_ensemble(model, source, train_config, loss, model_names=[m.path for m in cohort.members],
                            evaluate=task.evaluator(settings, cohort), progress=False)
    return {
        "task": task_name,
        "cohort": cohort_name,
        "seconds": time.perf_counter() - start,
        "members": [m.path for m in cohort.members],
        "eval_steps": result.eval_steps.tolist(),
        "metric": result.evaluations["metric"].tolist(),
        "metric_se": result.evaluations["metric_se"].tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", nargs="+", default=[str(PROJECT / "config.yaml")])
    parser.add_argument("--tasks", nargs="+", default=None, help="tasks to measure (default: all in the config)")
    parser.add_argument("--max-steps", type=int, default=6000)
    parser.add_argument("--tolerances", type=float, nargs="+", default=None,
                        help="default: each task's convergence_tolerance from the config")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from headshare import tasks

    config = load(args.config, args.max_steps, args.device)
    chosen = [t for t in tasks.active(config) if args.tasks is None or t.name in args.tasks]
    jobs = [(config, t.name, c.name) for t in chosen for c in t.cohorts(t.settings(config))]
    print(f"{len(jobs)} cohorts, {args.max_steps} steps each, on {args.device}, {args.jobs} processes", flush=True)
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(train_one, jobs))
    print(f"trained in {time.perf_counter() - started:.0f} s", flush=True)

    summary: dict[str, dict[float, list]] = {}
    for record in results:
        tolerances = args.tolerances or [config["training"][record["task"]]["convergence_tolerance"]]
        steps = np.asarray(record["eval_steps"], dtype=float)
        for tolerance in tolerances:
            firsts = [
                first_converged(steps, np.asarray(m), np.asarray(e), tolerance)
                for m, e in zip(record["metric"], record["metric_se"])
            ]
            record[f"first_converged@{tolerance:g}"] = firsts
            summary.setdefault(record["task"], {}).setdefault(tolerance, []).extend(firsts)
            final = [f"{m[-1]:.4f}" for m in record["metric"]]
            shown = ", ".join("-" if f is None else str(f) for f in firsts)
            print(f"{record['cohort']} ({record['seconds']:.0f} s) tol {tolerance:g}: converged at [{shown}]; "
                  f"final metric [{', '.join(final)}]")
    for task_name, by_tolerance in summary.items():
        for tolerance, firsts in by_tolerance.items():
            done = np.array([np.inf if f is None else f for f in firsts])
            quantiles = {q: np.quantile(done, q, method="inverted_cdf") for q in (0.5, 0.9, 1.0)}
            print(f"{task_name} tol {tolerance:g}: {np.isfinite(done).mean():.0%} of {len(done)} models converge "
                  f"within {args.max_steps} steps; step by which 50% / 90% / all had: "
                  + " / ".join("never" if not np.isfinite(v) else f"{v:.0f}" for v in quantiles.values()))
    if args.json:
        args.json.write_text(json.dumps(results))


if __name__ == "__main__":
    main()
