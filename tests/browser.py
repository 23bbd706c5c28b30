"""Headless Debian chromium for the tests that check the MLflow UI (tests/test_mlflow_ui.py for a
tiny store, tests/test_pipeline.py for a pipeline's): the fixture and patient element lookups."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 30


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium through Debian's chromedriver (no driver or browser download)."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        pytest.fail(f"{' and '.join(missing)} missing: `make setup` installs Debian's chromium and chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is missing: `make setup` installs the test extras of pyproject.toml")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # --no-sandbox: the tests run as root; --disable-dev-shm-usage: containers have a small /dev/shm.
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=2200,1000", "--no-first-run", "--disable-extensions"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    yield driver
    driver.quit()


def wait(driver, condition, what: str):
    """WebDriverWait with a message that says what never appeared, and a screenshot of the page."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT_S).until(condition)
    except TimeoutException:
        shot = Path("/tmp/dpcl-test-mlflow-ui.png")
        driver.save_screenshot(str(shot))
        pytest.fail(f"no {what} within {WAIT_S} s on {driver.current_url} (screenshot: {shot})")


def find(css: str):
    """A condition: the first element matching `css`, or False while there is none."""
    from selenium.webdriver.common.by import By

    return lambda driver: next(iter(driver.find_elements(By.CSS_SELECTOR, css)), False)


def text_of(css: str, expected: str):
    """A condition: an element matching `css` shows exactly `expected` (React may re-render it)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def check(driver):
        try:
            return any(el.text.strip() == expected for el in driver.find_elements(By.CSS_SELECTOR, css))
        except StaleElementReferenceException:
            return False

    return check
