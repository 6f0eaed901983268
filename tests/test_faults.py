"""Faults: a job killed with SIGKILL resumes to the very same weights, and non-finite losses, damaged stores
and foreign or unsafe checkpoints stop the pipeline with a message naming what is wrong."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import xarray as xr
import yaml
from helpers.artifacts import TINY, small_dataset, tiny_training
from helpers.configs import smoke_config
from helpers.paths import PROJECT_ROOT, SMOKE_CONFIG
from helpers.readme import readme_commands

from headshare import tasks
from headshare.checkpoint import (
    CheckpointMismatchError,
    load_ensemble,
    load_payload,
    save_atomic,
    save_ensemble,
)
from headshare.model import EnsembleTransformer, ModelConfig
from headshare.store import ArtifactError, open_store, write_store
from headshare.tasks.regression.source import RegressionSource
from headshare.training import Batch, NonFiniteLossError

TESTS = Path(__file__).resolve().parent
HALF_WRITTEN = re.compile(r"\.partial|\.tmp")


def half_written(folder: Path) -> list[Path]:
    """Files or folders whose names mark an unfinished atomic write."""
    return [path for path in folder.rglob("*") if HALF_WRITTEN.search(path.name)]


def run_python(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter that can import this test module (to share its helpers)."""
    prelude = f"import sys; sys.path.insert(0, {str(TESTS)!r})\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=300)


# ----------------------------------------------------------------------------- SIGKILL in the pipeline

STEPS, CHECKPOINT_EVERY = 120, 20
LONGER_TRAINING = {
    "device": "cpu",  # bit-identical resumption is promised on CPU
    "threads": 1,
    "hmm": {"loss_positions": ["all"], "grid": {"n_heads": [1], "d_head": [4], "seeds": [0]}},
    "training": {"hmm": {"max_steps": STEPS, "checkpoint_every": CHECKPOINT_EVERY, "log_every": CHECKPOINT_EVERY}},
}
COHORT = "hmm/m3_0.7_m3_0.7/a~0.85_loss~all/L~1_h~1_dh~4"
MEMBER = f"results/models/{COHORT}/seed~0"
CHECKPOINT = f"results/checkpoints/{COHORT}.pt"
TRAIN_LOG = f"results/logs/train/{COHORT}.log"


def snakemake_command(workdir: Path, override: Path, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(PROJECT_ROOT / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(SMOKE_CONFIG), str(override),
        "--cores", "2",
        *args,
    ]


def run_to_completion(workdir: Path, override: Path, *args: str) -> None:
    result = subprocess.run(snakemake_command(workdir, override, *args), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]


def readme_recovery_commands() -> list[list[str]]:
    """The README's recovery after a kill of the whole Snakemake process (in its Faults paragraph)."""
    commands = readme_commands("**Faults.**")
    assert commands and all(words[0] == "snakemake" for words in commands), commands
    return commands


def run_as_the_readme_says(
    words: list[str], workdir: Path, override: Path, target: str
) -> subprocess.CompletedProcess:
    """One README command, run from the project root and told only where: working directory, config, target."""
    command = [
        sys.executable, "-m", *words, target,
        "--snakefile", str(PROJECT_ROOT / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(SMOKE_CONFIG), str(override),
    ]
    return subprocess.run(command, check=False, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900)


def first_progress_count(log: Path) -> int:
    """The step count the job's progress bar started from (its initial state is printed first)."""
    return int(re.search(rf"(\d+)/{STEPS}\b", log.read_text()).group(1))


def live_processes(group: int) -> list[int]:
    """Processes of a process group that still run (zombies awaiting their parent do not)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError):
            continue
        if int(pgrp) == group and state not in ("Z", "X"):
            alive.append(int(stat.parent.name))
    return alive


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, what: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"snakemake exited (code {process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see the killed job's processes")
def test_sigkill_mid_training_resumes_to_the_same_weights(tmp_path: Path):
    override = tmp_path / "longer.yaml"
    override.write_text(yaml.safe_dump(LONGER_TRAINING))
    target = f"{MEMBER}/model.pt"
    reference = tmp_path / "uninterrupted"
    run_to_completion(reference, override, target)

    workdir = tmp_path / "killed"
    with open(tmp_path / "killed.out", "w") as output:
        command = snakemake_command(workdir, override, target)
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for((workdir / CHECKPOINT).exists, process, "the first checkpoint")
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
        deadline = time.monotonic() + 30
        while live_processes(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not live_processes(process.pid), "the training job survived the kill"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    assert not (workdir / target).exists()
    saved = load_payload(workdir / CHECKPOINT)["step"]
    assert saved % CHECKPOINT_EVERY == 0 and 0 < saved < STEPS

    recovery = readme_recovery_commands()
    without_unlock = run_as_the_readme_says(recovery[-1], workdir, override, target)
    assert without_unlock.returncode != 0
    assert "Directory cannot be locked" in without_unlock.stdout + without_unlock.stderr
    for words in recovery:
        result = run_as_the_readme_says(words, workdir, override, target)
        assert result.returncode == 0, f"{' '.join(words)}:\n{result.stdout[-3000:]}{result.stderr[-5000:]}"

    assert first_progress_count(workdir / TRAIN_LOG) == saved, "the rerun did not resume from the checkpoint"
    resumed = torch.load(workdir / target, weights_only=True)["model"]
    straight = torch.load(reference / target, weights_only=True)["model"]
    assert resumed.keys() == straight.keys()
    for name, tensor in straight.items():
        assert torch.equal(resumed[name], tensor), name
    resumed_record = json.loads((workdir / MEMBER / "training.json").read_text())
    straight_record = json.loads((reference / MEMBER / "training.json").read_text())
    assert resumed_record["log_steps"] == list(range(CHECKPOINT_EVERY, STEPS + 1, CHECKPOINT_EVERY))
    assert resumed_record["losses"] == straight_record["losses"]
    assert half_written(workdir / "results") == []
    assert [path for path in (workdir / "results" / "checkpoints").rglob("*") if path.is_file()] == []


# ----------------------------------------------------------------------------- SIGKILL inside a write


def test_a_store_write_killed_midway_is_cleared_by_the_next_write(tmp_path: Path):
    target = tmp_path / "stores" / "data.zarr"
    killed = run_python(
        "import os, signal, xarray as xr\n"
        "from headshare.store import write_store\n"
        "from helpers.artifacts import small_dataset\n"
        "real = xr.Dataset.to_zarr\n"
        "def dying(self, store, **kwargs):\n"
        "    real(self[['first']], store, **kwargs)\n"  # half the variables are on disk
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "xr.Dataset.to_zarr = dying\n"
        f"write_store(small_dataset(), {str(target)!r})\n"
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert half_written(target.parent), "the killed write left nothing behind"
    with pytest.raises(ArtifactError, match=re.escape(str(target)) + ".*does not exist"):
        open_store(target)

    write_store(small_dataset(), target)
    assert half_written(target.parent) == []
    xr.testing.assert_identical(open_store(target), small_dataset())


def test_a_checkpoint_write_killed_midway_leaves_the_previous_one_to_resume_from(tmp_path: Path):
    checkpoint = tmp_path / "ckpt.pt"
    killed = run_python(
        "import os, signal, torch\n"
        "from helpers.artifacts import tiny_training\n"
        "real, saves = torch.save, []\n"
        "def dying(payload, handle, *args, **kwargs):\n"
        "    saves.append(payload['step'])\n"
        "    if len(saves) == 3:\n"  # the save of step 6: steps 2 and 4 are safely on disk
        "        handle.write(b'PK half a checkpoint')\n"
        "        handle.flush()\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    real(payload, handle, *args, **kwargs)\n"
        "torch.save = dying\n"
        f"tiny_training({str(checkpoint)!r})\n"
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert half_written(tmp_path), "the kill did not interrupt a checkpoint write"
    assert load_payload(checkpoint)["step"] == 4

    resumed = tiny_training(checkpoint)
    straight = tiny_training(None)
    for name, tensor in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], tensor), name
    assert half_written(tmp_path) == []


# ----------------------------------------------------------------------------- non-finite losses


@dataclass(frozen=True)
class InfiniteInputAt:
    """A regression source whose one member sees an infinite input value at one step."""

    source: RegressionSource
    member: int
    step: int

    def __call__(self, step: int) -> Batch:
        batch = self.source(step)
        if step != self.step:
            return batch
        inputs = batch.inputs.clone()
        inputs[self.member, 0, 0, 0] = float("inf")
        return Batch(inputs, batch.targets, batch.loss_positions)


def test_an_infinite_input_stops_training_naming_the_model_and_the_step(tmp_path: Path):
    checkpoint = tmp_path / "ckpt.pt"
    source = InfiniteInputAt(RegressionSource(seeds=[3, 4], batch_size=16, d=3, n_context=4), member=1, step=5)
    with pytest.raises(NonFiniteLossError, match=r"step 5 .*'b' \(loss (nan|inf)\)") as caught:
        tiny_training(checkpoint, source)
    assert "'a'" not in str(caught.value)
    saved = load_payload(checkpoint)
    assert saved["step"] == 4  # the last finished checkpoint; the non-finite update never happened
    assert all(torch.isfinite(tensor).all() for tensor in saved["model"].values())


# ----------------------------------------------------------------------------- damaged stores


@pytest.mark.parametrize("keep", [0.5, 0.0], ids=["half", "empty"])
def test_a_truncated_chunk_is_reported_with_the_store_path(tmp_path: Path, keep: float):
    target = write_store(small_dataset(), tmp_path / "data.zarr")
    [chunk] = [path for path in (target / "first" / "c").rglob("*") if path.is_file()]
    data = chunk.read_bytes()
    chunk.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ArtifactError, match=re.escape(str(target)) + ".*truncated.*rerun"):
        open_store(target)


def test_a_missing_store_is_reported_with_its_path(tmp_path: Path):
    with pytest.raises(ArtifactError, match=re.escape(str(tmp_path / "absent.zarr")) + " does not exist"):
        open_store(tmp_path / "absent.zarr")


# ----------------------------------------------------------------------------- foreign and damaged checkpoints


def smoke_model_configs() -> tuple[ModelConfig, ModelConfig]:
    """Model shapes of the smoke config's one- and two-head cohorts of the first condition."""
    config = smoke_config()
    task, settings = tasks.configured(config, "hmm")
    one, two = task.cohorts(settings)[:2]
    assert (one.coords["n_heads"], two.coords["n_heads"]) == (1, 2)
    return task.model_config(settings, one), task.model_config(settings, two)


def test_a_checkpoint_of_another_shape_is_refused_naming_file_and_shapes(tmp_path: Path):
    one_head, two_heads = smoke_model_configs()
    path = tmp_path / "model.pt"
    save_ensemble(path, EnsembleTransformer.from_seeds(one_head, [0]), ["m"])
    with pytest.raises(CheckpointMismatchError, match=re.escape(str(path)) + r".*n_heads: expected 2, found 1"):
        load_ensemble(path, two_heads)

    payload = load_payload(path)  # config says one head, weights say two
    payload["model"]["blocks.0.attn.W_O"] = torch.zeros(1, 2, one_head.d_head, one_head.d_model)
    tampered = tmp_path / "tampered.pt"
    save_atomic(payload, tampered)
    shapes = r"blocks\.0\.attn\.W_O: expected \(1, 1, 4, 16\), found \(1, 2, 4, 16\)"
    with pytest.raises(CheckpointMismatchError, match=re.escape(str(tampered)) + ".*" + shapes):
        load_ensemble(tampered, one_head)


def write_garbage(path: Path) -> None:
    path.write_bytes(bytes(range(256)) * 4)


def write_truncated(path: Path) -> None:
    save_ensemble(path, EnsembleTransformer.from_seeds(TINY, [0]), ["m"])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def write_empty(path: Path) -> None:
    path.write_bytes(b"")


def write_a_bare_tensor(path: Path) -> None:
    torch.save(torch.zeros(3), path)


@pytest.mark.parametrize("damage", [write_garbage, write_truncated, write_empty, write_a_bare_tensor])
def test_an_unreadable_checkpoint_is_refused_naming_the_file(tmp_path: Path, damage: Callable[[Path], None]):
    path = tmp_path / "model.pt"
    damage(path)
    with pytest.raises(CheckpointMismatchError, match=re.escape(str(path))):
        load_ensemble(path, TINY)


class PlantsAFile:
    """Unpickling this runs ``open(marker, "w")``: arbitrary code, which loading must never execute."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_a_checkpoint_carrying_a_pickled_object_is_refused_without_running_it(tmp_path: Path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "model.pt"
    save_ensemble(path, EnsembleTransformer.from_seeds(TINY, [0]), ["m"])
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "extra": PlantsAFile(marker)}, path)
    with pytest.raises(CheckpointMismatchError, match=f"(?s){re.escape(str(path))}.*Unsupported global"):
        load_ensemble(path, TINY)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the planted code is real: an unrestricted load runs it
    assert marker.exists()
