"""`dpcl ui` in a real browser: the runs of a tiny store are listed with their metrics and compare.

Everything is real: runs logged by `dpcl.tracking.Run` (as training logs them) into a sqlite
store laid out as the project's (`mlflow.db` and `mlartifacts/` in a project root), the
MLflow server started by `dpcl.ui`, and Debian's chromium driven headless by Selenium.
Selectors follow the MLflow 3.17 UI: table rows carry the run id (`row-id`), metric cells
`col-id="metrics.`<key>`"`, the run name is a link to `/runs/<id>`, and buttons have stable
`data-testid`s. `make setup` installs chromium and chromium-driver.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import urllib.request
from pathlib import Path

import pytest

from dpcl.config import TrackingConfig
from dpcl.tracking import Run
from dpcl.ui import UiError, running_server, server_command
from browser import browser, find, text_of, wait  # noqa: F401 (browser is a fixture)

# run name -> per-epoch train_loss; val_loss is train_loss + 0.125. Binary fractions, so the
# table shows them exactly; the last epoch's values are what the UI lists.
RUNS = {
    "dpcl": [1.0, 0.5, 0.25],
    "baseline-unipolar_sigmoid-pit": [1.5, 1.0, 0.75],
    "baseline-threshold-fixed": [2.0, 1.75, 1.5],
}
COMPARED = ["dpcl", "baseline-unipolar_sigmoid-pit"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, str, dict[str, str]]:
    """A project root holding the project's default store with three finished runs.

    The runs are logged from inside the root with the default TrackingConfig (relative
    `sqlite:///mlflow.db`, `mlartifacts`), as a training in the project does; the server is
    started from elsewhere, so it must resolve both against the root it is given.
    """
    root = tmp_path_factory.mktemp("ui_project")
    run_ids = {}
    with contextlib.chdir(root):
        cfg = TrackingConfig()
        for name, losses in RUNS.items():
            run = Run(cfg, name)
            run.log_params({"model": {"hidden": 16, "layers": 1}, "training": {"learning_rate": 0.003}})
            for step, loss in enumerate(losses):
                run.log_metrics({"train_loss": loss, "val_loss": loss + 0.125}, step=step)
            history = root / "history.csv"
            history.write_text("epoch,train_loss\n" + "".join(f"{i},{v}\n" for i, v in enumerate(losses)))
            run.log_artifact(history)
            run.finish()
            run_ids[name] = run.run_id
        experiment_id = run.client.get_experiment_by_name(cfg.experiment).experiment_id
    return root, experiment_id, run_ids


@pytest.fixture(scope="module")
def server(store, tmp_path_factory):
    """`dpcl.ui`'s server on a free port, stopped (with its whole process group) afterwards."""
    root, _, _ = store
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path_factory.mktemp("ui_server") / "server.log"
    with running_server(TrackingConfig(), port, root, log_path=log, timeout_s=90) as started:
        yield started
    assert started.process.poll() is not None, "the server outlived its fixture"


def test_command_points_at_the_store_beside_the_params(tmp_path):
    cmd = server_command(TrackingConfig(), 5000, tmp_path)
    options = dict(zip(cmd[4::2], cmd[5::2]))
    assert cmd[1:4] == ["-m", "mlflow", "server"]
    assert options == {"--backend-store-uri": f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}",
                       "--default-artifact-root": (tmp_path / "mlartifacts").resolve().as_uri(),
                       "--artifacts-destination": (tmp_path / "mlartifacts").resolve().as_uri(),
                       "--host": "127.0.0.1", "--port": "5000", "--workers": "1"}
    with pytest.raises(UiError, match="server already"):
        server_command(TrackingConfig(uri="http://mlflow.example.org:5000"), 5000, tmp_path)


def test_the_experiment_opens_on_its_runs_with_a_description(store, tmp_path):
    # MLflow 3 opens an experiment without a kind on its GenAI pages and hides training runs.
    from mlflow.tracking import MlflowClient

    from dpcl.tracking import EXPERIMENT_TAGS
    from dpcl.ui import runs_page

    root, experiment_id, _ = store
    cfg = TrackingConfig()
    experiment = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}").get_experiment(experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "Sort by" in experiment.tags["mlflow.note.content"]
    assert runs_page(cfg, root, "http://127.0.0.1:5000") == f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    assert runs_page(cfg, tmp_path, "http://127.0.0.1:5000") == "http://127.0.0.1:5000"  # no store yet

    # A description the team has edited in the UI survives the next training.
    with contextlib.chdir(tmp_path):
        first = Run(cfg, "first")
        first.client.set_experiment_tag(first.client.get_experiment_by_name(cfg.experiment).experiment_id,
                                        "mlflow.note.content", "our notes")
        first.finish()
        second = Run(cfg, "second")
        tags = second.client.get_experiment_by_name(cfg.experiment).tags
        second.finish()
    assert tags["mlflow.note.content"] == "our notes"
    assert tags["mlflow.experimentKind"] == EXPERIMENT_TAGS["mlflow.experimentKind"]


@pytest.mark.parametrize("port", [0, 99999, -1])
def test_an_impossible_port_is_one_line(tmp_path, capsys, monkeypatch, port):
    # Was an OverflowError traceback from socket.bind for --port 99999.
    from dpcl.cli import main

    monkeypatch.chdir(tmp_path)
    shutil.copy(Path(__file__).resolve().parents[1] / "params.yaml", tmp_path / "params.yaml")
    assert main(["ui", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"port {port} is not a TCP port" in err and "Traceback" not in err
    assert not (tmp_path / "mlflow.db").exists()


def test_server_serves_the_project_store_and_its_artifacts(server, store):
    _, experiment_id, run_ids = store
    with urllib.request.urlopen(f"{server.url}/ajax-api/2.0/mlflow/experiments/get-by-name?experiment_name=dpcl",
                                timeout=10) as response:
        assert json.load(response)["experiment"]["experiment_id"] == experiment_id
    with urllib.request.urlopen(f"{server.url}/ajax-api/2.0/mlflow/artifacts/list?run_id={run_ids['dpcl']}",
                                timeout=10) as response:
        assert [f["path"] for f in json.load(response)["files"]] == ["history.csv"]


def test_runs_are_listed_with_their_metrics_and_two_compare(server, store, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _, experiment_id, run_ids = store
    # Where a new user starts: the root URL, MLflow 3.17's "Welcome to MLflow" in its GenAI mode.
    # The "Model training" switch, then the experiment under "Recent Experiments", open its runs
    # (in GenAI mode the same link opens a traces overview: README says to flip the switch).
    browser.get(f"{server.url}/")
    wait(browser, text_of("span", "Model training"), "the Model training switch")
    next(el for el in browser.find_elements(By.XPATH, "//span[text()='Model training']")).click()
    link = f"a[data-testid='experiment-list-item-link'][href$='/experiments/{experiment_id}']"
    wait(browser, text_of(link, "dpcl"), "the dpcl experiment under Recent Experiments")
    browser.find_element(By.CSS_SELECTOR, link).click()
    wait(browser, lambda d: f"/experiments/{experiment_id}/runs" in d.current_url, "the experiment's runs page")
    for name, run_id in run_ids.items():
        wait(browser, text_of(f"[row-id='{run_id}'] a[href*='/runs/{run_id}']", name), f"row of run {name!r}")

    # The metrics are offered as columns; shown, each row has its run's last logged values.
    wait(browser, find("[data-testid='column-selection-dropdown']"), "Columns button").click()
    for metric in ("train_loss", "val_loss"):
        wait(browser, find(f"[title='{metric}']"), f"{metric} in the column chooser").click()
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    for name, run_id in run_ids.items():
        for metric, value in (("train_loss", RUNS[name][-1]), ("val_loss", RUNS[name][-1] + 0.125)):
            wait(browser, text_of(f"[row-id='{run_id}'] [col-id='metrics.`{metric}`']", str(value)),
                 f"{metric} = {value} in the row of {name!r}")

    # Select two runs and compare them: both are on the compare page with both metrics, the third is not.
    for name in COMPARED:
        wait(browser, find(f"[row-id='{run_ids[name]}'] input[type='checkbox']"), f"checkbox of {name!r}").click()
    wait(browser, find("[data-testid='runs-compare-button']"), "Compare button").click()
    wait(browser, lambda d: "compare-runs" in d.current_url, "compare-runs page")
    wait(browser, lambda d: "Comparing 2 Runs" in d.find_element(By.TAG_NAME, "body").text, "compare heading")
    page = browser.find_element(By.TAG_NAME, "body").text
    for name in COMPARED:
        assert name in page and run_ids[name] in page
    assert "baseline-threshold-fixed" not in page and run_ids["baseline-threshold-fixed"] not in page
    plotted = {a.text.strip() for a in browser.find_elements(By.CSS_SELECTOR, "a[title='Plot chart']")}
    assert {"train_loss", "val_loss"} <= plotted
    shown = set()
    for cell in browser.find_elements(By.CSS_SELECTOR, "span[tooltip-data-state]"):
        with contextlib.suppress(ValueError):
            shown.add(round(float(cell.text), 3))
    expected = {round(RUNS[name][-1] + offset, 3) for name in COMPARED for offset in (0, 0.125)}
    assert expected <= shown, f"compare page shows metric values {sorted(shown)}, expected {sorted(expected)}"
