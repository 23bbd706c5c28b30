"""The end-to-end test: the whole pipeline on the CI profile with the real tools, in a temporary
git repository, as a team would use it.

One project is built once by Snakemake (the module fixture); the tests then take it, in file
order, through what must hold afterwards: DVC finds nothing to redo; the outputs pushed to the
default DVC remote pull into a fresh clone; the pipeline's MLflow runs are listed and compared
in a real browser; a deleted model is made again, and its training interrupted mid-way resumes
to the same weights; a `dvc exp run -S` sweep re-runs exactly the stages its param reaches, leaves Snakemake nothing to do, and
is listed by `dvc exp show` and MLflow, and going back Snakemake plans exactly those stages
while `dvc checkout` restores their committed outputs, which Snakemake adopts;
DVC builds the same data from nothing.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from browser import browser, find, text_of, wait  # noqa: F401 (browser is a fixture)
from conftest import copy_project, run, tool_env
from dpcl.config import deep_merge, load_params

pytestmark = pytest.mark.slow

BASELINES = ["threshold-fixed", "threshold-pit", "unipolar_sigmoid-fixed", "unipolar_sigmoid-pit"]
METHODS = ["dpcl", "dpcl-spectral", "spectral", "ibm", "irm", *(f"baseline-{b}" for b in BASELINES)]
# What a change of dpcl.embedding_dim reaches: the DPCL training, its two separations and their
# scores, the cost run (which times DPCL) and the report; never the data or the baselines.
EMBEDDING_STAGES = {"train_dpcl", "separate_dpcl@dpcl", "separate_dpcl@dpcl-spectral", "evaluate_dpcl",
                    "evaluate_dpcl_spectral", "cost", "report"}


def use_profile(project: Path, profile: str) -> None:
    """Write the profile into params.yaml, as a user running DVC with that profile would."""
    merged = deep_merge(yaml.safe_load((project / "params.yaml").read_text()),
                        yaml.safe_load((project / "profiles" / f"{profile}.yaml").read_text()))
    (project / "params.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))


def outputs_digest(project: Path) -> dict:
    """What must agree between two runs of the same params."""
    mix_lists = {p.name: p.read_text() for p in sorted((project / "data" / "mix" / "lists").glob("*.txt"))}
    return {
        "manifest": pd.read_csv(project / "data" / "corpus" / "manifest.csv").to_dict("list"),
        "lists": mix_lists,
        "features": json.loads((project / "data" / "features" / "summary.json").read_text()),
        "stats": json.loads((project / "data" / "features" / "stats.json").read_text())["mean"],
    }


def tracked_runs(project: Path) -> list:
    """Finished MLflow runs of the project's own sqlite store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("dpcl")
    return [r for r in client.search_runs([experiment.experiment_id], max_results=1000)
            if r.info.status == "FINISHED"]


def dvc_stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def snakemake_jobs_run(output: str) -> set[str]:
    return set(re.findall(r"^(?:local)?rule (\w+):", output, flags=re.M)) - {"all"}


def snakemake_outputs_made(output: str) -> set[str]:
    """Every output of the jobs a Snakemake run started (one rule can serve several DVC stages)."""
    return {path for line in re.findall(r"^    output: (.+)$", output, flags=re.M) for path in line.split(", ")}


def dvc_outputs(project: Path, stages: set[str]) -> set[str]:
    from dpcl.sync import dvc_stages

    return {out for name, stage in dvc_stages(project).items() if name in stages for out in stage.outputs}


def dvc_changed(project: Path) -> dict:
    return json.loads(run(["dvc", "status", "--json"], cwd=project).stdout or "{}")


def snakemake_pending(project: Path) -> str:
    """Snakemake's dry run; "Nothing to be done" in it means every output is current."""
    done = run(["snakemake", "--cores", "2", "--dry-run"], cwd=project)
    return done.stdout + done.stderr


def model_weights(model_pt: Path) -> dict:
    import torch

    return torch.load(model_pt, map_location="cpu", weights_only=False)["state_dict"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The CI profile (written into params.yaml and committed) built by `snakemake --cores 2`."""
    root = copy_project(tmp_path_factory.mktemp("e2e") / "project")
    use_profile(root, "ci")
    run(["git", "init", "-q"], cwd=root)
    assert (root / ".dvc" / "config").is_file(), "the project must ship its DVC repository (.dvc/)"
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "project"], cwd=root)
    built = run(["snakemake", "--cores", "2"], cwd=root, timeout=1200)
    (root / "snakemake-first-run.log").write_text(built.stderr)
    return root


def test_snakemake_builds_every_result_tracks_it_and_records_it_for_dvc(project):
    for stage in ("corpus", "mix", "features", "train_dpcl"):
        assert (project / "logs" / f"{stage}.log").is_file()
    baselines = sorted(p.name for p in (project / "data" / "models" / "baselines").iterdir())
    assert baselines == BASELINES
    runs = tracked_runs(project)  # jobs ran in parallel against one sqlite store
    names = {r.info.run_name for r in runs}
    assert len(runs) == len(names) == 5 + len(METHODS), sorted(names)  # the trainings, then the report's scores
    assert {f"scores-{m}" for m in METHODS} <= names
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert set(metrics["methods"]) == set(METHODS) and metrics["targets"]["ibm_sdri"] > 5
    page = (project / "reports" / "site" / "index.html").read_text()
    assert "<audio controls" in page and "Spectral clustering vs Deep Clustering" in page
    assert metrics["spectral"]["test_split"]["spectral"]["mixtures"] == 3  # profiles/ci.yaml: spectral.max_mixtures
    assert {"spectral-dense", "spectral-knn", "dpcl"} <= set(metrics["spectral"]["cost_exponents"])
    dpcl_run = next(r for r in runs if r.info.run_name.startswith("dpcl-"))
    assert {"train_loss", "val_loss", "learning_rate", "epoch_seconds"} <= set(dpcl_run.data.metrics)
    assert dpcl_run.data.params["dpcl.size"] == "default" and dpcl_run.data.tags["git_commit"] != "unknown"
    digest = outputs_digest(project)
    assert digest["features"]["tt"]["mixtures"] == 10
    manifest = pd.DataFrame(digest["manifest"])
    assert set(manifest[manifest.split == "tt"].speaker).isdisjoint(manifest[manifest.split != "tt"].speaker)

    # Snakemake recorded what it made in dvc.lock on success: DVC has nothing to redo.
    assert "stages Snakemake brought up to date are recorded in dvc.lock" in (project / "snakemake-first-run.log").read_text()
    assert dvc_changed(project) == {}
    assert dvc_stages_run(run(["dvc", "repro"], cwd=project).stdout) == set()
    assert "Nothing to be done" in snakemake_pending(project)
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], cwd=project).stdout)
    assert "reports/metrics.json" in json.dumps(shown) and "dpcl_share_of_ibm" in json.dumps(shown)
    run(["dvc", "plots", "show", "-o", "plots_html"], cwd=project)
    assert (project / "plots_html" / "index.html").stat().st_size > 1000


def test_outputs_pushed_to_the_default_remote_pull_into_a_fresh_clone(project):
    # Metrics and plots are `cache: false` outputs: git carries them, the DVC remote the rest.
    run(["git", "add", "dvc.lock", "params.yaml", "reports/metrics.json", "reports/sdri.csv"], cwd=project)
    run(["git", "commit", "-qm", "results of the CI profile"], cwd=project)
    run(["dvc", "push", "-q"], cwd=project)
    remote = project.parent / "dpcl-dvc-remote"  # .dvc/config: the folder beside the project
    assert remote.is_dir() and any(remote.rglob("*"))

    clone = project.parent / "clone"
    run(["git", "clone", "-q", str(project), str(clone)], cwd=project.parent)
    assert not (clone / "data" / "models").exists()
    run(["dvc", "pull", "-q"], cwd=clone)
    assert dvc_changed(clone) == {}
    assert outputs_digest(clone) == outputs_digest(project)
    for model in ("dpcl", "baselines/threshold-pit"):
        pulled = (clone / "data" / "models" / model / "model.pt").read_bytes()
        assert pulled == (project / "data" / "models" / model / "model.pt").read_bytes()
    assert dvc_stages_run(run(["dvc", "repro"], cwd=clone).stdout) == set()
    # A fresh clone has no Snakemake records: it adopts the pulled outputs instead of rebuilding them.
    assert "Nothing to be done" in snakemake_pending(clone)


def test_the_pipelines_runs_are_listed_with_metrics_and_compared_in_a_browser(project, browser, tmp_path):
    from selenium.webdriver.common.by import By

    from dpcl.ui import running_server

    trainings = {r.info.run_name: r for r in tracked_runs(project) if r.data.tags.get("kind") in ("dpcl", "baseline")}
    dpcl_name = next(name for name in trainings if name.startswith("dpcl-"))
    baseline_name = next(name for name in trainings if name.endswith("threshold-pit"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    tracking = load_params([project / "params.yaml"]).tracking
    with running_server(tracking, port, project, log_path=tmp_path / "server.log", timeout_s=90) as server:
        experiment_id = trainings[dpcl_name].info.experiment_id
        browser.get(f"{server.url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning")
        for name, record in trainings.items():
            run_id = record.info.run_id
            wait(browser, text_of(f"[row-id='{run_id}'] a[href*='/runs/{run_id}']", name), f"row of run {name!r}")
        wait(browser, find("[data-testid='column-selection-dropdown']"), "Columns button").click()
        wait(browser, find("[title='val_loss']"), "val_loss in the column chooser").click()
        browser.find_element(By.TAG_NAME, "body").click()
        for name, record in trainings.items():
            cell = f"[row-id='{record.info.run_id}'] [col-id='metrics.`val_loss`']"
            shown = wait(browser, find(cell), f"val_loss of {name!r}").text.strip()
            # The table rounds to three decimals.
            assert float(shown) == pytest.approx(record.data.metrics["val_loss"], abs=6e-4), name

        for name in (dpcl_name, baseline_name):
            wait(browser, find(f"[row-id='{trainings[name].info.run_id}'] input[type='checkbox']"),
                 f"checkbox of {name!r}").click()
        wait(browser, find("[data-testid='runs-compare-button']"), "Compare button").click()
        wait(browser, lambda d: "Comparing 2 Runs" in d.find_element(By.TAG_NAME, "body").text, "compare heading")
        page = browser.find_element(By.TAG_NAME, "body").text
        assert dpcl_name in page and baseline_name in page


def test_a_deleted_model_is_made_again_and_an_interrupted_training_resumes_to_the_same_weights(project):
    # A user deletes the model: `all` reaches it (it was "Nothing to be done" while its consumers
    # were current), and `snakemake data/models/dpcl` (README, "Recovering") trains it again; that
    # training is interrupted as Ctrl-C would, and the next start resumes to the very same weights.
    import shutil

    model = project / "data" / "models" / "dpcl"
    reference = model_weights(model / "model.pt")
    shutil.rmtree(model)
    for checkpoint in (project / "data" / "checkpoints").glob("dpcl*"):
        checkpoint.unlink()
    assert "train_dpcl" in snakemake_pending(project)
    command = ["snakemake", "--cores", "2", "data/models/dpcl"]
    # SIGINT as a terminal user has it: a test run started in the background (`pytest &`, nohup)
    # inherits SIGINT ignored, which Python and every child would keep, so Ctrl-C would do nothing.
    first = subprocess.Popen(command, cwd=project, env=tool_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while not list((project / "data" / "checkpoints").glob("dpcl*.pt")):
        assert first.poll() is None, f"the training ended before its first checkpoint was seen:\n{first.stdout.read()}"
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.02)
    seen = {p.name: round(time.time() - p.stat().st_mtime, 2) for p in (project / "data" / "checkpoints").glob("dpcl*")}
    os.killpg(first.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's process group
    try:
        output = first.communicate(timeout=120)[0]
    except subprocess.TimeoutExpired as late:  # never leave it holding the project's locks for the next tests
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        output = f"(still running 120 s after SIGINT: killed)\n{late.output}"
    training_log = (project / "logs" / "train_dpcl.log").read_text()[-3000:]
    assert first.returncode != 0, f"not interrupted (checkpoint ages when seen, s: {seen}):\n{output}\n{training_log}"
    assert not model.exists(), "an interrupted training left an output"

    again = run(command, cwd=project)
    assert snakemake_jobs_run(again.stderr) == {"train_dpcl"}
    assert "resuming from" in (project / "logs" / "train_dpcl.log").read_text()
    resumed = model_weights(model / "model.pt")
    assert resumed.keys() == reference.keys()
    for key, tensor in reference.items():
        assert resumed[key].equal(tensor), f"{key} differs after the resumed training"
    # The same model again: DVC's record of it still holds.
    assert "train_dpcl" not in dvc_changed(project)


def test_a_param_sweep_reruns_exactly_what_it_reaches_under_either_tool_and_is_listed(project):
    """`dvc exp run -S` is `dvc repro` after a param change: the new value re-runs exactly the
    stages the param reaches, Snakemake then adopts them, and both `dvc exp show` and MLflow list
    the experiment; going back to the committed value, Snakemake plans exactly those stages and
    `dvc checkout` restores their committed outputs from the cache. One value: a second one
    repeated the same path for three CI minutes."""
    for dim in (8,):
        ran = run(["dvc", "exp", "run", "-S", f"dpcl.embedding_dim={dim}", "-n", f"dim{dim}"], cwd=project,
                  timeout=900)
        assert dvc_stages_run(ran.stdout) == EMBEDDING_STAGES
        pending = snakemake_pending(project)  # Snakemake adopts what DVC made instead of making it again
        assert "marked done for Snakemake too" in pending and "Nothing to be done" in pending, pending

    table = json.loads(run(["dvc", "exp", "show", "--json"], cwd=project).stdout)
    listed: dict[str, dict] = {}

    def collect(node) -> None:
        if isinstance(node, dict):
            if node.get("name") == "dim8" and isinstance(node.get("data"), dict):
                listed[node["name"]] = node["data"]
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(table)
    assert listed.keys() == {"dim8"}, json.dumps(table)[:2000]
    for name, data in listed.items():
        assert data["params"]["params.yaml"]["data"]["dpcl"]["embedding_dim"] == int(name[3:])
        assert "dpcl_share_of_ibm" in json.dumps(data["metrics"])
    by_experiment: dict[str, list] = {}
    for record in tracked_runs(project):
        by_experiment.setdefault(record.data.tags.get("dvc_experiment"), []).append(record)
    for name in ("dim8",):
        trained = [r for r in by_experiment.get(name, []) if r.info.run_name.startswith("dpcl-")]
        assert len(trained) == 1 and trained[0].data.params["dpcl.embedding_dim"] == name[3:], name
        assert any(r.info.run_name == "scores-dpcl" for r in by_experiment[name])

    # Back to the committed value: Snakemake plans exactly the stages the param reaches, and DVC's
    # cache gives their committed outputs back (`dvc checkout`), which Snakemake then adopts.
    # (Running those stages again would repeat the first leg's work for three CI minutes.)
    run(["git", "checkout", "params.yaml", "dvc.lock", "reports/metrics.json", "reports/sdri.csv"], cwd=project)
    assert snakemake_outputs_made(snakemake_pending(project)) == dvc_outputs(project, EMBEDDING_STAGES)
    run(["dvc", "checkout", "-q"], cwd=project)
    assert dvc_changed(project) == {}
    pending = snakemake_pending(project)
    assert "marked done for Snakemake too" in pending and "Nothing to be done" in pending, pending


def test_dvc_builds_the_same_data_from_nothing(project):
    before = outputs_digest(project)
    run(["rm", "-rf", "data/corpus", "data/mix", "data/features"], cwd=project)
    # -f: DVC would otherwise restore the deleted outputs from its cache instead of building them.
    ran = dvc_stages_run(run(["dvc", "repro", "--force", "--no-run-cache", "features"], cwd=project).stdout)
    assert ran == {"corpus", "mix", "features"}
    after = outputs_digest(project)
    assert after["manifest"] == before["manifest"]
    assert after["lists"] == before["lists"]
    assert after["features"] == before["features"]
    assert after["stats"] == pytest.approx(before["stats"], abs=1e-6)
