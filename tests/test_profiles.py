"""The Snakemake profiles under profiles/snakemake/: a Slurm cluster, and the team's MLflow server.

There is no Slurm cluster here. A dry run never reaches the executor (Snakemake swaps in its own
`dryrun` one), so it shows the DAG and the resources Snakemake gives each job, not what is
submitted; and it sets --cores 1 itself, so it cannot see that a real Slurm run needs `cores:`
(the Snakefile's threads read workflow.cores). What the plugin submits is therefore checked with
a stand-in `sbatch` on PATH that records its arguments and refuses the job: the real plugin,
a real (not dry) run, only the cluster is missing.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run, tool_env
from dpcl.config import load_params

SLURM = "profiles/snakemake/slurm"
TEAM = "profiles/snakemake/team"
PLUGIN = "snakemake-executor-plugin-slurm"
# What profiles/snakemake/slurm/profile.yaml promises the DPCL training (set-resources, set-threads).
DPCL_RESOURCES = {"gpu": "1", "runtime": "720", "mem_mb": "32000"}
DPCL_THREADS = 8


def env_without_slurm_settings(**extra: str) -> dict[str, str]:
    """tool_env() less the profile's DPCL_SLURM_* variables (a developer's own must not leak in)."""
    env = {k: v for k, v in tool_env().items() if not k.startswith("DPCL_SLURM_")}
    env.update(extra)
    return env


def snakemake(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["snakemake", *args], cwd=project, env=env or env_without_slurm_settings(),
                          capture_output=True, text=True, timeout=600)


def dry_run(project: Path, *args: str) -> str:
    result = snakemake(project, "--dry-run", "--printshellcmds", *args)
    assert result.returncode == 0, f"snakemake -n {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def job_counts(out: str) -> dict[str, int]:
    """rule -> jobs, from the first 'Job stats' table of a dry run."""
    table = out.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {name: int(n) for name, n in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M) if name != "total"}


def jobs(out: str) -> list[dict]:
    """One dict per planned job: rule, threads, resources (name -> text), shell command."""
    planned = []
    for block in re.split(r"\n(?=rule \w+:)", out)[1:]:
        fields = dict(re.findall(r"^    (\w+): (.*)$", block, flags=re.M))
        shell = re.search(r"^Shell command: (.*)$", block, flags=re.M)
        planned.append({
            "rule": re.match(r"rule (\w+):", block).group(1),
            "threads": int(fields.get("threads", 1)),
            "resources": dict(item.split("=", 1) for item in fields.get("resources", "").split(", ") if item),
            "shell": shell.group(1) if shell else "",
        })
    return planned


def one_job(out: str, rule: str) -> dict:
    found = [job for job in jobs(out) if job["rule"] == rule]
    assert found, f"no {rule} job planned"
    return found[0]


def test_slurm_plugin_is_installed_at_its_pin():
    pins = [dep for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
            if dep.startswith(f"{PLUGIN}==")]
    assert pins, f"pyproject.toml pins no {PLUGIN}"
    assert importlib.metadata.version(PLUGIN) == pins[0].split("==")[1]


@pytest.mark.parametrize("overlay", [[], ["--configfile", "profiles/ci.yaml"]], ids=["params", "ci"])
def test_slurm_profile_dry_run_plans_the_whole_dag_with_the_gpu_for_dpcl(project_copy, overlay):
    local = job_counts(dry_run(project_copy, "--cores", "2", *overlay))
    out = dry_run(project_copy, "--profile", SLURM, *overlay)
    assert f"Using profile {SLURM}" in out
    rules = set(run(["snakemake", "--list-rules"], cwd=project_copy).stdout.split())
    counts = job_counts(out)
    assert set(counts) == rules, f"rules not planned: {sorted(rules - set(counts))}"
    assert counts == local, "the profile changed the DAG"  # the whole of it, baseline matrix and all

    dpcl = one_job(out, "train_dpcl")
    assert {k: dpcl["resources"].get(k) for k in DPCL_RESOURCES} == DPCL_RESOURCES, dpcl["resources"]
    assert dpcl["resources"].get("slurm_partition") == "gpu"  # DPCL_SLURM_GPU_PARTITION unset
    assert dpcl["threads"] == DPCL_THREADS and f"--threads {DPCL_THREADS}" in dpcl["shell"]
    baseline = one_job(out, "train_baseline")
    assert "gpu" not in baseline["resources"] and "gres" not in baseline["resources"]
    assert int(baseline["resources"]["runtime"]) < int(DPCL_RESOURCES["runtime"])
    # No partition or account in the environment: the plugin's own fallbacks (sinfo, sacct) apply.
    assert "slurm_partition" not in baseline["resources"] and "slurm_account" not in baseline["resources"]


def test_slurm_profile_submits_dpcl_to_the_gpu_partition(project_copy, tmp_path):
    """A real run of the slurm executor; the stand-in sbatch keeps each call's argv and refuses."""
    calls = tmp_path / "sbatch-calls.jsonl"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "open(os.environ['FAKE_SBATCH_CALLS'], 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "sys.exit('sbatch: error: a stand-in (tests/test_profiles.py), no cluster here')\n")
    (bin_dir / "sacctmgr").write_text("#!/bin/sh\necho testlab\n")  # the plugin validates the account
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    for upstream in ("corpus", "mix", "features"):  # train only: nothing upstream to submit
        (project_copy / "data" / upstream).mkdir(parents=True)
    env = env_without_slurm_settings(
        PATH=f"{bin_dir}{os.pathsep}{tool_env()['PATH']}", FAKE_SBATCH_CALLS=str(calls),
        DPCL_SLURM_ACCOUNT="testlab", DPCL_SLURM_PARTITION="cpu-test", DPCL_SLURM_GPU_PARTITION="gpu-test")
    # The profile as it is, less its waits (one retry, status checks spaced for a real queue).
    result = snakemake(project_copy, "--profile", SLURM, "--retries", "0", "--seconds-between-status-checks",
                       "1", "--slurm-init-seconds-before-status-checks", "1",
                       "data/models/dpcl", "data/models/baselines/threshold-fixed", env=env)
    out = result.stdout + result.stderr
    assert result.returncode != 0 and "SLURM sbatch failed" in out, f"not the stand-in's refusal:\n{out}"

    submitted = {}
    for line in calls.read_text().splitlines():
        argv, opts = json.loads(line), {}
        for i, arg in enumerate(argv):
            if arg.startswith("-"):
                key, sep, value = arg.partition("=")
                opts[key] = value if sep else (argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("-")
                                               else True)
        submitted[opts["--comment"].split("_wildcards_")[0].removeprefix("rule_")] = opts
    assert set(submitted) == {"train_dpcl", "train_baseline"}, submitted.keys()
    dpcl, baseline = submitted["train_dpcl"], submitted["train_baseline"]
    assert dpcl["--gpus"] == DPCL_RESOURCES["gpu"] and dpcl["-p"] == "gpu-test"
    assert (dpcl["-t"], dpcl["--mem"]) == (DPCL_RESOURCES["runtime"], DPCL_RESOURCES["mem_mb"])
    assert dpcl["--cpus-per-task"] == str(DPCL_THREADS) and dpcl["-A"] == "testlab"
    assert "--gpus" not in baseline and "--gres" not in baseline
    assert baseline["-p"] == "cpu-test" and baseline["--cpus-per-task"] == "1" and baseline["-A"] == "testlab"


@pytest.mark.parametrize("profiles", [[TEAM], [SLURM, TEAM]], ids=["team", "slurm+team"])
def test_team_profile_gives_every_stage_the_team_server(project_copy, profiles):
    team_uri = yaml.safe_load((ROOT / "profiles" / "team.yaml").read_text())["tracking"]["uri"]
    assert team_uri != load_params([ROOT / "params.yaml"]).tracking.uri
    args = [arg for profile in profiles for arg in ("--profile", profile)]
    out = dry_run(project_copy, *args, *([] if SLURM in profiles else ["--cores", "2"]))
    planned = [job for job in jobs(out) if job["rule"] != "all"]
    assert len(planned) > 30
    for job in planned:
        # The params files a stage reads are the --params of its own command line.
        files = re.findall(r"--params (\S+)", job["shell"])
        assert files and Path(files[-1]).name == "team.yaml", job["shell"]
        assert load_params([project_copy / f for f in files]).tracking.uri == team_uri, job["shell"]


def test_team_dvc_remote_stays_out_of_the_committed_config(project_copy, tmp_path):
    """The documented `dvc remote add --local -d team ...` (profiles/snakemake/team/profile.yaml)."""
    run(["git", "init", "-q"], cwd=project_copy)
    committed = (project_copy / ".dvc" / "config").read_text()
    remote = tmp_path / "shared-remote"
    run(["dvc", "remote", "add", "--local", "-d", "team", str(remote)], cwd=project_copy)
    assert run(["dvc", "remote", "default"], cwd=project_copy).stdout.strip() == "team"
    assert (project_copy / ".dvc" / "config").read_text() == committed
    assert str(remote) in (project_copy / ".dvc" / "config.local").read_text()
    run(["git", "check-ignore", "--quiet", ".dvc/config.local"], cwd=project_copy)  # never committed
