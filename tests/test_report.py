"""The report: real separation, real scoring, then tables, figures, audio and DVC metrics."""

from __future__ import annotations

import json

import pandas as pd

from dpcl.config import TrackingConfig
from dpcl.evaluate import run_evaluate
from dpcl.report import ReportInputs, pair_kinds, run_report, targets
from dpcl.separate import run_separate
from test_separate import NAMES, save_model, save_stats, split_dir, tiny_params  # noqa: F401 (fixture)


def test_pair_kinds_group_mixtures_by_speaker_facts():
    mixtures = pd.DataFrame({"name": ["a", "b", "c"], "sex_1": ["M", "F", "unknown"], "sex_2": ["M", "M", "F"],
                             "kind_1": ["real", "synthetic", "real"], "kind_2": ["synthetic", "real", "real"],
                             "language_1": ["cs", "en", "nl"], "language_2": ["cs", "de", "nl"]})
    kinds = pair_kinds(mixtures)
    assert kinds["sex_pair"].tolist() == ["same sex", "different sex", "unknown"]
    assert kinds["kind_pair"].tolist() == ["real+synthetic", "real+synthetic", "real+real"]
    assert kinds["language_pair"].tolist() == ["same language", "different languages", "same language"]


def test_targets_compare_dpcl_with_the_ibm_and_the_best_fixed_baseline():
    scores = pd.DataFrame({"method": ["dpcl", "ibm", "baseline-a-fixed", "baseline-b-fixed", "baseline-a-pit"],
                           "sdri": [9.0, 12.0, 4.0, 5.5, 8.0]})
    goal = targets(scores)
    assert goal["dpcl_share_of_ibm"] == 0.75 and goal["share_target_met"]
    assert goal["best_fixed_baseline"] == "baseline-b-fixed" and goal["margin_over_best_fixed_db"] == 3.5
    assert goal["margin_target_met"]


def test_report_from_real_separations_and_scores(tmp_path, split_dir):
    (split_dir / "mixtures.csv").write_text(pd.DataFrame({
        "name": NAMES, "sex_1": ["M", "F", "M"], "sex_2": ["F", "F", "unknown"], "kind_1": ["real"] * 3,
        "kind_2": ["synthetic", "real", "real"], "language_1": ["cs"] * 3, "language_2": ["cs", "nl", "cs"],
    }).to_csv(index=False))
    params = tiny_params()
    model = save_model(tmp_path / "dpcl.pt", params)
    separated, scores = tmp_path / "separated", tmp_path / "scores"
    for oracle in ("ibm", "irm"):
        run_separate(params, oracle, split_dir, None, None, separated / oracle)
    run_separate(params, "dpcl", split_dir, model, save_stats(tmp_path / "stats.json"), separated / "dpcl")
    for method in ("ibm", "irm", "dpcl"):
        run_evaluate(split_dir, separated / method, scores / f"{method}.csv", scores / f"{method}.json", 2,
                     workers=1)
    models = tmp_path / "models"
    (models / "dpcl").mkdir(parents=True)
    pd.DataFrame({"train_loss": [1.0, 0.8], "val_loss": [1.1, 0.9]}).to_csv(models / "dpcl" / "history.csv")

    site = tmp_path / "reports" / "site"
    tracking = TrackingConfig(uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_location=str(tmp_path / "art"))
    metrics = run_report(ReportInputs(scores, split_dir, separated, models), site,
                         tmp_path / "reports" / "metrics.json", tmp_path / "reports" / "sdri.csv", tracking)
    page = (site / "index.html").read_text()
    for fragment in ("All methods", "SDRi by speaker pair", "figures/sdri_distribution.png",
                     "figures/training_curves.png", "figures/example.png", "<audio controls", "different sex"):
        assert fragment in page
    for figure in ("sdri_distribution.png", "training_curves.png", "example.png"):
        assert (site / "figures" / figure).stat().st_size > 10_000
    assert len(list((site / "audio").glob("*.wav"))) == 3 * (3 + 3 * 2)  # mixture, 2 refs, 3 methods x 2
    stored = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert stored == json.loads(json.dumps(metrics))
    assert stored["methods"]["ibm"]["sdri mean"] > stored["methods"]["dpcl"]["sdri mean"]  # a random DPCL
    assert stored["targets"]["share_target_met"] is False
    plot = pd.read_csv(tmp_path / "reports" / "sdri.csv")
    assert len(plot) == 3 * len(NAMES) and set(plot["method"]) == {"ibm", "irm", "dpcl"}

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking.uri)
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("dpcl").experiment_id])}
    assert set(runs) == {"scores-ibm", "scores-irm", "scores-dpcl"}
    assert runs["scores-ibm"].data.metrics["sdri_mean"] == stored["methods"]["ibm"]["sdri mean"]
    assert "dpcl_share_of_ibm" in runs["scores-dpcl"].data.metrics
