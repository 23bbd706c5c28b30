"""The Snakemake profiles under profiles/snakemake/ (a Slurm cluster, the team's MLflow server) and
the standard-corpus params profiles (profiles/wsj0-2mix.yaml, profiles/libri2mix.yaml).

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
from dpcl.tracking import flatten

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
    """One dict per planned job: rule, inputs, threads, resources (name -> text), shell command."""
    planned = []
    for block in re.split(r"\n(?=rule \w+:)", out)[1:]:
        fields = dict(re.findall(r"^    (\w+): (.*)$", block, flags=re.M))
        shell = re.search(r"^Shell command: (.*)$", block, flags=re.M)
        planned.append({
            "rule": re.match(r"rule (\w+):", block).group(1),
            "inputs": [path for path in fields.get("input", "").split(", ") if path],
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


# --------------------------------------------------------------------------- standard corpora

# profile -> the mix inputs that stand in for data/corpus (MIX_SOURCES in workflow/rules/common.smk).
STANDARD = {
    "wsj0-2mix": {"official_lists": "lists", "official_activlev": "activlev", "wsj0_root": None},
    "libri2mix": {"librimix_metadata": "metadata", "librispeech_root": None},
}


def stand_in_overlay(tmp_path: Path, profile: str) -> tuple[Path, dict[str, Path]]:
    """A params overlay pointing the profile's EDIT paths at empty folders made here."""
    folders = {key: tmp_path / "standard" / key for key in STANDARD[profile]}
    for folder in folders.values():
        folder.mkdir(parents=True)
    overlay = tmp_path / f"{profile}-paths.yaml"
    overlay.write_text(yaml.safe_dump({"mix": {key: str(folder) for key, folder in folders.items()}}))
    return overlay, folders


@pytest.mark.parametrize("profile", sorted(STANDARD))
def test_standard_corpus_profile_merges_into_gpu_sized_paper_params(profile):
    path = ROOT / "profiles" / f"{profile}.yaml"
    base, params = load_params([ROOT / "params.yaml"]), load_params([ROOT / "params.yaml", path])
    assert params.mix.recipe == ("librimix" if profile == "libri2mix" else "wsj0-2mix")
    for key in STANDARD[profile]:  # an EDIT placeholder the user replaces; validation needs no folder
        assert getattr(params.mix, key), key
    dpcl = params.dpcl
    assert dpcl.size == "paper" and (dpcl.network.layers, dpcl.network.hidden) == (4, 600)
    assert dpcl.training.device == "cuda" and dpcl.training.max_batches_per_epoch == 0
    frames = [phase.chunk_frames * phase.batch_size for phase in dpcl.training.phases]
    base_frames = [phase.chunk_frames * phase.batch_size for phase in base.dpcl.training.phases]
    assert min(frames) >= 4 * max(base_frames), frames  # GPU-sized steps
    assert [p.chunk_frames for p in dpcl.training.phases] == [100, 400]  # the DPCL++ curriculum
    assert not dpcl.training.dynamic_mixing.enabled  # draws from the corpus stage, which does not run
    # A profile states only what it changes: every value differs from params.yaml's.
    stated = flatten(yaml.safe_load(path.read_text()))
    defaults = flatten(yaml.safe_load((ROOT / "params.yaml").read_text()))
    assert [key for key, value in stated.items() if defaults.get(key, object()) == value] == []


@pytest.mark.parametrize("profile", sorted(STANDARD))
def test_standard_corpus_profile_plans_the_pipeline_without_the_corpus_stage(project_copy, tmp_path, profile):
    overlay, folders = stand_in_overlay(tmp_path, profile)
    files = ["params.yaml", f"profiles/{profile}.yaml", str(overlay)]
    out = dry_run(project_copy, "--cores", "2", "--configfile", *files[1:])
    counts = job_counts(out)
    default = job_counts(dry_run(project_copy, "--cores", "2"))
    assert "corpus" not in counts and counts.get("mix") == 1, counts
    assert counts == {rule: n for rule, n in default.items() if rule != "corpus"}  # the rest of the DAG as ever

    mix, dpcl = one_job(out, "mix"), one_job(out, "train_dpcl")
    lists = {str(folders[key]) for key, role in STANDARD[profile].items() if role}
    assert lists <= set(mix["inputs"]) and "data/corpus" not in mix["inputs"], mix["inputs"]
    assert {"src/dpcl/mixing.py", "src/dpcl/mixlists.py", "src/dpcl/librimix.py"} <= set(mix["inputs"])
    assert "data/corpus" not in dpcl["inputs"] and "data/mix" in dpcl["inputs"], dpcl["inputs"]
    for job in (mix, dpcl):
        assert "--corpus" not in job["shell"], job["shell"]
    for job in jobs(out):
        if job["rule"] != "all":  # every stage reads params.yaml, the profile and the overlay, in order
            found = re.findall(r"--params (\S+)", job["shell"])  # Snakemake makes the overlays absolute
            assert [(project_copy / f).resolve() for f in found] == [(project_copy / f).resolve() for f in files]


@pytest.mark.parametrize("profile", sorted(STANDARD))
def test_standard_corpus_profile_left_unedited_stops_at_the_missing_lists(project_copy, profile):
    result = snakemake(project_copy, "--dry-run", "--cores", "2", "--configfile", f"profiles/{profile}.yaml")
    out = result.stdout + result.stderr
    placeholder = next(str(value) for key, value in yaml.safe_load(
        (ROOT / "profiles" / f"{profile}.yaml").read_text())["mix"].items() if STANDARD[profile].get(key))
    assert result.returncode != 0 and "MissingInputException" in out and placeholder in out, out
