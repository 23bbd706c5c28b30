"""The report: real separation, real scoring, then tables, figures, audio and DVC metrics."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from dpcl.features import spread_subset
from dpcl.config import TrackingConfig
from dpcl.cost_growth import run_cost
from dpcl.errors import DpclError
from dpcl.evaluate import run_evaluate
from dpcl.report import ReportInputs, cost_table, pair_kinds, run_report, spectral_table, targets
from dpcl.separate import run_separate
from test_separate import NAMES, save_model, save_stats, split_dir, tiny_params  # noqa: F401 (fixture)

SPECTRAL_MIXTURES = 2  # spectral.max_mixtures of the report test: fewer than the split's 3


def test_pair_kinds_group_mixtures_by_speaker_facts():
    mixtures = pd.DataFrame({"name": ["a", "b", "c"], "sex_1": ["M", "F", "unknown"], "sex_2": ["M", "M", "F"],
                             "kind_1": ["real", "synthetic", "real"], "kind_2": ["synthetic", "real", "real"],
                             "language_1": ["cs", "en", "nl"], "language_2": ["cs", "de", "nl"]})
    kinds = pair_kinds(mixtures)
    assert kinds["sex_pair"].tolist() == ["same sex", "different sex", "unknown"]
    assert kinds["kind_pair"].tolist() == ["real+synthetic", "real+synthetic", "real+real"]
    assert kinds["language_pair"].tolist() == ["same language", "different languages", "same language"]


def test_targets_compare_dpcl_with_the_ibm_and_the_best_baselines_on_real_pairs():
    methods = ["dpcl", "ibm", "baseline-a-fixed", "baseline-b-fixed", "baseline-a-pit", "baseline-b-pit"]
    scores = pd.DataFrame({"method": methods * 2, "name": ["real"] * 6 + ["synthetic"] * 6,
                           "sdri": [9.0, 12.0, 4.0, 5.5, 5.0, 6.0] + [20.0] * 6})
    kinds = pd.DataFrame({"name": ["real", "synthetic"], "kind_pair": ["real+real", "real+synthetic"]})
    goal = targets(scores, kinds)
    assert goal["test_mixtures"] == "real+real" and goal["n_mixtures"] == 1  # the synthetic pair is left out
    assert goal["dpcl_share_of_ibm"] == 0.75 and goal["share_target_met"]
    assert goal["best_pit_baseline"] == "baseline-b-pit" and goal["margin_over_best_pit_db"] == 3.0
    assert goal["best_fixed_baseline"] == "baseline-b-fixed" and goal["margin_over_best_fixed_db"] == 3.5
    assert goal["margin_target_met"]
    low = targets(scores.assign(sdri=scores["sdri"].where(scores["method"] != "dpcl", 4.0)), kinds)
    assert not low["share_target_met"] and not low["margin_target_met"]


def test_spectral_table_compares_every_method_on_the_mixtures_spectral_separated():
    rows = [("spectral", "a", 1.0), ("spectral", "b", 3.0)]
    rows += [(m, n, v) for m, base in (("dpcl", 5.0), ("dpcl-spectral", 4.0), ("ibm", 10.0), ("irm", 9.0))
             for n, v in (("a", base), ("b", base + 2.0), ("c", base + 10.0))]
    scores = pd.DataFrame(rows, columns=["method", "name", "sdri"]).assign(si_sdri=lambda t: t["sdri"] - 1.0)
    table = spectral_table(scores, {"spectral": 2.5, "dpcl": 0.1})
    assert table.index.tolist() == ["spectral", "dpcl", "dpcl-spectral", "ibm", "irm"]
    assert table.loc["dpcl", "sdri_same"] == 6.0 and table.loc["dpcl", "sdri_all"] == 9.0
    assert table.loc["spectral", "mixtures"] == 2 and table.loc["spectral", "si_sdri_same"] == 1.0
    assert table.loc["spectral", "seconds_per_mixture"] == 2.5 and np.isnan(table.loc["ibm", "seconds_per_mixture"])
    with pytest.raises(DpclError, match="dpcl-spectral"):
        spectral_table(scores[scores["method"] != "dpcl-spectral"], {})


def test_cost_table_marks_refused_lengths_and_carries_the_exponents():
    cost = {"rows": [{"method": m, "length_s": length, "seconds": s, "peak_bytes": 2**20 * length, "sdri": 5.0}
                     for m, length, s in (("spectral-dense", 1.0, 0.5), ("spectral-dense", 2.0, None),
                                          ("dpcl", 1.0, 0.1), ("dpcl", 2.0, 0.2))],
            "exponents": {"dpcl": {"time": 1.0, "memory": 1.0}}}
    table = cost_table(cost)
    assert table.loc["spectral-dense", "seconds @ 2 s"] == "refused"
    assert table.loc["spectral-dense", "seconds @ 1 s"] == 0.5
    assert table.loc["dpcl", "MiB @ 2 s"] == 2.0 and table.loc["dpcl", "time exponent"] == 1.0
    assert np.isnan(table.loc["spectral-dense", "time exponent"])  # one length ran: no slope


def model_with_stats(path, params, stats_path):
    """A tiny DPCL model.pt carrying its feature statistics, as training writes it (`dpcl cost` passes none)."""
    save_model(path, params)
    payload = torch.load(path, weights_only=True)
    payload["stats"] = json.loads(stats_path.read_text())
    torch.save(payload, path)
    return path


def test_report_from_real_separations_and_scores(tmp_path, split_dir):
    (split_dir / "mixtures.csv").write_text(pd.DataFrame({
        "name": NAMES, "sex_1": ["M", "F", "M"], "sex_2": ["F", "F", "unknown"], "kind_1": ["real"] * 3,
        "kind_2": ["synthetic", "real", "real"], "language_1": ["cs"] * 3, "language_2": ["cs", "nl", "cs"],
    }).to_csv(index=False))
    params = tiny_params(spectral={"max_mixtures": SPECTRAL_MIXTURES, "cost_lengths_s": [0.25, 0.5]})
    model = model_with_stats(tmp_path / "dpcl.pt", params, save_stats(tmp_path / "stats.json"))
    separated, scores = tmp_path / "separated", tmp_path / "scores"
    for method in ("ibm", "irm", "spectral"):
        run_separate(params, method, split_dir, None, None, separated / method)
    for method in ("dpcl", "dpcl-spectral"):
        run_separate(params, method, split_dir, model, None, separated / method)
    for method in ("ibm", "irm", "dpcl", "dpcl-spectral", "spectral"):
        run_evaluate(split_dir, separated / method, scores / f"{method}.csv", scores / f"{method}.json", 2,
                     workers=1, limit=SPECTRAL_MIXTURES if method == "spectral" else None)
    run_cost(params, split_dir, model, tmp_path / "cost")
    models = tmp_path / "models"
    (models / "dpcl").mkdir(parents=True)
    pd.DataFrame({"train_loss": [1.0, 0.8], "val_loss": [1.1, 0.9]}).to_csv(models / "dpcl" / "history.csv")

    site = tmp_path / "reports" / "site"
    tracking = TrackingConfig(uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifact_location=str(tmp_path / "art"))
    inputs = ReportInputs(scores, split_dir, separated, models, tmp_path / "cost")
    with pytest.raises(DpclError, match="run the `cost` stage first"):
        run_report(ReportInputs(scores, split_dir, separated, models, tmp_path / "no-cost"), site,
                   tmp_path / "reports" / "metrics.json", tmp_path / "reports" / "sdri.csv")
    metrics = run_report(inputs, site, tmp_path / "reports" / "metrics.json", tmp_path / "reports" / "sdri.csv",
                         tracking)
    page = (site / "index.html").read_text()
    # A reader first meets one paper-style table on the headline (real+real) mixtures, DPCL in bold.
    assert page.index("Results on the 2 real+real test mixtures") < page.index("<h2>Targets")
    assert page.index("<h2>Targets") < page.index("by speaker pair") < page.index("Every statistic")
    assert "<tr class='dpcl'>" in page and "<th>share of IBM (%)</th>" in page
    assert "<th></th>" not in page  # no bare index-name rows
    headline = pd.read_csv(site / "tables" / "headline.csv")
    assert headline.columns.tolist() == ["method", "SDRi (dB)", "SI-SDRi (dB)", "SIR (dB)", "SAR (dB)",
                                         "share of IBM (%)"]
    assert headline["method"].tolist()[-2:] in (["ibm", "irm"], ["irm", "ibm"])  # the ceiling comes last
    assert headline.set_index("method").loc["ibm", "share of IBM (%)"] == pytest.approx(100)
    assert headline.set_index("method").loc["dpcl", "SDRi (dB)"] == pytest.approx(metrics["targets"]["dpcl_sdri"],
                                                                              abs=0.01)
    for fragment in ("by speaker pair", "figures/sdri_distribution.png",
                     "figures/training_curves.png", "figures/example.png", "<audio controls", "different sex",
                     "Spectral clustering vs Deep Clustering", "figures/growth.png", "time exponent",
                     f"the {SPECTRAL_MIXTURES} mixtures of spectral", "spectral-dense", "spectral-knn",
                     "spectral (knn)"):
        assert fragment in page
    for figure in ("sdri_distribution.png", "training_curves.png", "example.png", "growth.png"):
        assert (site / "figures" / figure).stat().st_size > 10_000
    # mixture and 2 references per example; 2 estimates of 4 methods on every example, of spectral on 2
    assert len(list((site / "audio").glob("*.wav"))) == 3 * (3 + 4 * 2) + SPECTRAL_MIXTURES * 2
    table = pd.read_csv(site / "tables" / "spectral_vs_dpcl.csv", index_col="method")
    assert table.index.tolist() == ["spectral", "dpcl", "dpcl-spectral", "ibm", "irm"]
    first = spread_subset(NAMES, SPECTRAL_MIXTURES)
    ibm_scores = pd.read_csv(scores / "ibm.csv")
    assert table.loc["ibm", "sdri_same"] == pytest.approx(ibm_scores[ibm_scores["name"].isin(first)]["sdri"].mean(),
                                                         abs=1e-3)
    assert table.loc["spectral", "mixtures"] == SPECTRAL_MIXTURES and table.loc["ibm", "mixtures"] == len(NAMES)
    assert (table["seconds_per_mixture"] > 0).all()
    stored = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert stored == json.loads(json.dumps(metrics))
    assert stored["methods"]["ibm"]["sdri mean"] > stored["methods"]["dpcl"]["sdri mean"]  # a random DPCL
    assert stored["targets"]["share_target_met"] is False
    assert stored["spectral"]["test_split"]["spectral"]["mixtures"] == SPECTRAL_MIXTURES
    assert set(stored["spectral"]["cost_exponents"]) == {"spectral-dense", "spectral-knn", "dpcl", "dpcl-spectral",
                                                         "ibm"}
    plot = pd.read_csv(tmp_path / "reports" / "sdri.csv")
    assert len(plot) == 4 * len(NAMES) + SPECTRAL_MIXTURES
    assert set(plot["method"]) == {"ibm", "irm", "dpcl", "dpcl-spectral", "spectral"}

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking.uri)
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("dpcl").experiment_id])}
    assert set(runs) == {"scores-ibm", "scores-irm", "scores-dpcl", "scores-dpcl-spectral", "scores-spectral"}
    assert runs["scores-ibm"].data.metrics["sdri_mean"] == stored["methods"]["ibm"]["sdri mean"]
    assert "dpcl_share_of_ibm" in runs["scores-dpcl"].data.metrics
    spectral_run = runs["scores-spectral"].data.metrics
    assert spectral_run["sdri_mean"] == stored["methods"]["spectral"]["sdri mean"]
    knn_time = stored["spectral"]["cost_exponents"]["spectral-knn"]["time"]  # the pipeline's affinity: knn
    assert spectral_run["cost_time_exponent"] == pytest.approx(knn_time, abs=1e-4)  # metrics.json: 4 decimals
    assert spectral_run["seconds_per_mixture"] > 0 and "cost_time_exponent" in runs["scores-dpcl-spectral"].data.metrics
