"""The README's screenshots, taken in headless Debian chromium from a built project.

    python docs/screenshots.py                 # after `make run`: docs/mlflow-runs.png, docs/report.png
    python docs/screenshots.py --project DIR   # another built project (the CI profile's, for instance)

Why a script: a screenshot pasted by hand goes stale the day the report changes; this one is
taken the way a user sees the pages (the MLflow runs table in its Model training mode, the
report's first screen) and can be taken again after any run. Needs `make test`'s chromium.
"""

from __future__ import annotations

import argparse
import socket
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from dpcl.config import load_params
from dpcl.ui import running_server, runs_page

HERE = Path(__file__).resolve().parent


def browser(width: int, height: int) -> webdriver.Chrome:
    """Debian's headless chromium at a README-friendly window size."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def mlflow_runs(project: Path, out: Path) -> None:
    """The experiment's runs table with the metrics a reader sorts by shown as columns."""
    tracking = load_params([project / "params.yaml"]).tracking
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    driver = browser(1900, 820)
    try:
        with running_server(tracking, port, project, log_path=out.with_suffix(".server.log")) as server:
            driver.get(runs_page(tracking, project, server.url))
            WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "[row-id]"))
            for close in driver.find_elements(By.CSS_SELECTOR, "button[aria-label='Close']"):  # the assistant pane
                if close.is_displayed():
                    close.click()
            driver.find_element(By.CSS_SELECTOR, "[data-testid='column-selection-dropdown']").click()
            for metric in ("val_sdri", "sdri_mean"):
                chooser = driver.find_elements(By.CSS_SELECTOR, f"[title='{metric}']")
                if chooser:
                    driver.execute_script("arguments[0].scrollIntoView(); arguments[0].click()", chooser[0])
            driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
            time.sleep(2)
            driver.save_screenshot(str(out))
    finally:
        driver.quit()
        out.with_suffix(".server.log").unlink(missing_ok=True)


def report(project: Path, out: Path) -> None:
    """The report's first screen: the paper-style table and the targets."""
    driver = browser(1200, 1100)
    try:
        driver.get((project / "reports" / "site" / "index.html").resolve().as_uri())
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.TAG_NAME, "table"))
        time.sleep(1)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=HERE.parent)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    mlflow_runs(args.project, args.out / "mlflow-runs.png")
    report(args.project, args.out / "report.png")
    print(f"wrote {args.out / 'mlflow-runs.png'} and {args.out / 'report.png'}")


if __name__ == "__main__":
    main()
