"""The pipeline runs for real under both orchestrators, on the CI profile, in a temporary git
repository: the same data from the same params, every model trained and tracked in MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import run
from dpcl.config import deep_merge


def use_profile(project: Path, profile: str) -> None:
    """Write the profile into params.yaml, as a user running DVC with that profile would."""
    merged = deep_merge(yaml.safe_load((project / "params.yaml").read_text()),
                        yaml.safe_load((project / "profiles" / f"{profile}.yaml").read_text()))
    (project / "params.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))


def git_dvc_repo(project: Path) -> None:
    run(["git", "init", "-q"], cwd=project)
    assert (project / ".dvc" / "config").is_file(), "the project must ship its DVC repository (.dvc/)"
    run(["git", "add", "-A"], cwd=project)
    run(["git", "commit", "-qm", "project"], cwd=project)


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
    return [r for r in client.search_runs([experiment.experiment_id]) if r.info.status == "FINISHED"]


@pytest.mark.slow
def test_snakemake_and_dvc_build_the_same_data(project_copy, tmp_path):
    use_profile(project_copy, "ci")
    git_dvc_repo(project_copy)
    run(["snakemake", "--cores", "2"], cwd=project_copy)
    for stage in ("corpus", "mix", "features", "train_dpcl"):
        assert (project_copy / "logs" / f"{stage}.log").is_file()
    baselines = sorted(p.name for p in (project_copy / "data" / "models" / "baselines").iterdir())
    assert baselines == ["threshold-fixed", "threshold-pit", "unipolar_sigmoid-fixed", "unipolar_sigmoid-pit"]
    runs = tracked_runs(project_copy)  # jobs ran in parallel against one sqlite store
    methods = ["dpcl", "dpcl-spectral", "spectral", "ibm", "irm", *(f"baseline-{b}" for b in baselines)]
    names = {r.info.run_name for r in runs}
    assert len(runs) == len(names) == 5 + len(methods), sorted(names)  # the trainings, then the report's scores
    assert {f"scores-{m}" for m in methods} <= names
    metrics = json.loads((project_copy / "reports" / "metrics.json").read_text())
    assert set(metrics["methods"]) == set(methods) and metrics["targets"]["ibm_sdri"] > 5
    page = (project_copy / "reports" / "site" / "index.html").read_text()
    assert "<audio controls" in page and "Spectral clustering vs Deep Clustering" in page
    assert metrics["spectral"]["test_split"]["spectral"]["mixtures"] == 3  # profiles/ci.yaml: spectral.max_mixtures
    assert {"spectral-dense", "spectral-knn", "dpcl"} <= set(metrics["spectral"]["cost_exponents"])
    assert (project_copy / "reports" / "site" / "figures" / "growth.png").is_file()
    dpcl_run = next(r for r in runs if r.info.run_name.startswith("dpcl-"))
    assert {"train_loss", "val_loss", "learning_rate", "epoch_seconds"} <= set(dpcl_run.data.metrics)
    assert dpcl_run.data.params["dpcl.size"] == "default" and dpcl_run.data.tags["git_commit"] != "unknown"
    from_snakemake = outputs_digest(project_copy)
    assert from_snakemake["features"]["tt"]["mixtures"] == 10
    manifest = pd.DataFrame(from_snakemake["manifest"])
    assert set(manifest[manifest.split == "tt"].speaker).isdisjoint(manifest[manifest.split != "tt"].speaker)

    # The same params through DVC, from nothing, in the same repository.
    run(["rm", "-rf", "data", "reports"], cwd=project_copy)
    run(["dvc", "repro", "-q"], cwd=project_copy)
    from_dvc = outputs_digest(project_copy)
    assert from_dvc["manifest"] == from_snakemake["manifest"]
    assert from_dvc["lists"] == from_snakemake["lists"]
    assert from_dvc["features"] == from_snakemake["features"]
    assert from_dvc["stats"] == pytest.approx(from_snakemake["stats"], abs=1e-6)
    lock = (project_copy / "dvc.lock").read_text()
    assert "data/features" in lock and "train_baseline@threshold-pit" in lock
    assert (project_copy / "data" / "models" / "dpcl" / "model.pt").is_file()
    assert len(tracked_runs(project_copy)) == 2 * len(runs)  # DVC's runs are tracked as runs of their own
    assert json.loads((project_copy / "reports" / "metrics.json").read_text())["methods"].keys() == set(methods)
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], cwd=project_copy).stdout)
    assert "reports/metrics.json" in json.dumps(shown) and "dpcl_share_of_ibm" in json.dumps(shown)
    run(["dvc", "plots", "show", "-o", "plots_html"], cwd=project_copy)
    assert (project_copy / "plots_html" / "index.html").stat().st_size > 1000
