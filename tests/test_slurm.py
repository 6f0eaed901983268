"""The SLURM profile: site names from the environment, and the smoke pipeline through sbatch.

The end-to-end test runs the README's SLURM command as the README gives it (the profile, no
--cores) on a one-node cluster on this host (.ci/slurm-cluster.sh), with three changes: the
smoke config in place of the sweep, a working directory of its own, and the options a cluster
without an accounting database needs (NO_ACCOUNTING_OPTIONS). The README's site variables name
partitions this cluster does not have, so the test leaves them unset. The profile trains families
(grouping=family), so the local run it is compared with does too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr
from helpers.paths import PROJECT_ROOT, SMOKE_CONFIG
from helpers.pipeline import run_snakemake
from helpers.readme import readme_commands
from snakemake.profiles import ProfileConfigFileParser

SLURM_PROFILE = PROJECT_ROOT / "profiles" / "slurm"
CLUSTER_SCRIPT = PROJECT_ROOT / ".ci" / "slurm-cluster.sh"
SITE_VARIABLES = ("HEADSHARE_SLURM_PARTITION", "HEADSHARE_SLURM_GPU_PARTITION", "HEADSHARE_SLURM_ACCOUNT")
TRAINING_RULES = ("train_hmm", "train_readoff", "train_regression")
# sacct cannot answer without accounting, so poll squeue (the cluster's MinJobAge keeps
# finished jobs listed); poll after 1 s instead of 40 s; keep successful jobs' logs to inspect.
NO_ACCOUNTING_OPTIONS = (
    "--slurm-status-command", "squeue",
    "--slurm-init-seconds-before-status-checks", "1",
    "--slurm-keep-successful-logs",
)
CLUSTER_START_TIMEOUT_S = 600  # includes apt-get install on a bare machine
CLUSTER_STOP_TIMEOUT_S = 120
PIPELINE_TIMEOUT_S = 1800


def parsed_profile() -> dict:
    """The slurm profile as Snakemake turns it into command-line arguments."""
    with open(SLURM_PROFILE / "config.yaml") as stream:
        return dict(ProfileConfigFileParser().parse(stream))


def test_profile_trains_one_family_per_job():
    assert parsed_profile()["config"] == ["grouping=family"]


def test_profile_without_site_variables_leaves_partition_and_account_to_slurm(monkeypatch):
    for name in SITE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    profile = parsed_profile()
    assert profile["executor"] == "slurm"
    assert not any(r.startswith(("slurm_partition=", "slurm_account=")) for r in profile["default-resources"])
    for rule in TRAINING_RULES:
        assert {f"{rule}:gpu=1", f"{rule}:slurm_partition='gpu'"} <= set(profile["set-resources"])


def test_profile_takes_site_names_from_environment_as_strings(monkeypatch):
    monkeypatch.setenv("HEADSHARE_SLURM_PARTITION", "all")  # a Python builtin if left unquoted
    monkeypatch.setenv("HEADSHARE_SLURM_GPU_PARTITION", "a100")
    monkeypatch.setenv("HEADSHARE_SLURM_ACCOUNT", "12345")  # an int if left unquoted
    profile = parsed_profile()
    assert {"slurm_partition='all'", "slurm_account='12345'"} <= set(profile["default-resources"])
    for rule in TRAINING_RULES:
        assert f"{rule}:slurm_partition='a100'" in profile["set-resources"]


def readme_slurm_command() -> list[str]:
    """The README's SLURM command, with the smoke config in place of the sweep."""
    [command] = [words for words in readme_commands("## Running on a SLURM cluster") if words[0] != "export"]
    assert command[0] == "snakemake" and not {"--cores", "-c"} & set(command), command
    configfile = command.index("--configfile") + 1
    return [*command[:configfile], str(SMOKE_CONFIG), *command[configfile + 1 :]]


def run_readme_slurm_command(workdir: Path) -> subprocess.CompletedProcess:
    """Run the README's SLURM command from the project root, writing into ``workdir``."""
    command = [sys.executable, "-m", *readme_slurm_command(), "--directory", str(workdir), *NO_ACCOUNTING_OPTIONS]
    environment = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    result = subprocess.run(
        command, check=False, cwd=PROJECT_ROOT, capture_output=True, text=True,
        timeout=PIPELINE_TIMEOUT_S, env=environment,
    )
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


def run_cluster_script(action: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CLUSTER_SCRIPT), action], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running one-node cluster, or a skip that says why it cannot run here; stopped afterwards."""
    if os.geteuid() != 0:
        pytest.skip("the one-node SLURM cluster needs root (it installs packages and starts daemons)")
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        pytest.skip("SLURM is not installed and there is no apt-get to install it")
    try:
        try:
            started = run_cluster_script("start", CLUSTER_START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.skip(f"the SLURM cluster did not start within {CLUSTER_START_TIMEOUT_S} s")
        if started.returncode != 0:
            pytest.skip(f"the SLURM daemons could not start:\n{started.stdout}{started.stderr}")
        yield
    finally:
        run_cluster_script("stop", CLUSTER_STOP_TIMEOUT_S)


def slurm_jobs(job_ids: set[str]) -> dict[str, tuple[str, str, str]]:
    """Job id -> (partition, state, GPU request) as slurmctld reports them."""
    listing = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--jobs", ",".join(sorted(job_ids)),
         "--Format=JobID:|,Partition:|,State:|,tres-per-job:"],
        capture_output=True, text=True, timeout=60,
    )
    assert listing.returncode == 0, listing.stderr
    rows = (line.split("|") for line in listing.stdout.splitlines() if line.strip())
    return {job_id.strip(): (partition.strip(), state.strip(), gpus.strip()) for job_id, partition, state, gpus in rows}


def produced_files(workdir: Path) -> set[Path]:
    return {
        path.relative_to(workdir)
        for path in workdir.rglob("*")
        if path.is_file() and ".snakemake" not in path.relative_to(workdir).parts
    }


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Object at .snakemake_timestamp:UserWarning")
def test_readme_slurm_command_runs_the_smoke_pipeline_through_sbatch_and_matches_local_run(
    slurm_cluster, tmp_path, monkeypatch
):
    for name in SITE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    on_slurm, local = tmp_path / "slurm", tmp_path / "local"
    run_snakemake(local, "--config", *parsed_profile()["config"])
    result = run_readme_slurm_command(on_slurm)

    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", result.stdout + result.stderr))
    log_root = on_slurm / ".snakemake" / "slurm_logs"
    logs = {log.stem: log for log in log_root.rglob("*.log")}  # rule_<rule>/<wildcards>/<jobid>.log
    assert submitted and set(logs) == submitted
    jobs = slurm_jobs(submitted)
    assert set(jobs) == submitted
    rules = {job_id: log.relative_to(log_root).parts[0].removeprefix("rule_") for job_id, log in logs.items()}
    training = {job_id for job_id, rule in rules.items() if rule.startswith(tuple(f"{r}_family" for r in TRAINING_RULES))}
    assert training
    for job_id, rule in rules.items():
        expected = ("gpu", "COMPLETED", "gres:gpu:1") if job_id in training else ("cpu", "COMPLETED", "N/A")
        assert jobs[job_id] == expected, f"SLURM job {job_id} (rule {rule})"

    assert produced_files(on_slurm) == produced_files(local)
    stores = sorted(store.relative_to(local) for store in local.rglob("*.zarr") if store.is_dir())
    assert stores
    for store in stores:
        # assert_equal compares values, dims and coords, not attrs (provenance carries timestamps).
        xr.testing.assert_equal(
            xr.open_zarr(local / store, consolidated=False), xr.open_zarr(on_slurm / store, consolidated=False)
        )
