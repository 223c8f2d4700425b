"""A real headless Chromium (Debian's chromium and chromedriver) driven by Selenium.

Missing browser, driver or selenium: the tests skip with the reason, except under
QUEUE_TEST_REQUIRE_ALL=1 (CI), where they fail. Nothing is ever downloaded: the paths of
the browser and its driver are given, and Selenium Manager (which would fetch them) is
made to fail loudly should anything reach it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import REQUIRE_ALL

CHROMIUM = os.environ.get("QUEUE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("QUEUE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")


def _missing() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)) and not shutil.which(path):
            return f"{path} is missing (apt-get install {package})"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    problem = _missing()
    if problem:
        if REQUIRE_ALL:
            pytest.fail(f"browser tests cannot run: {problem} (QUEUE_TEST_REQUIRE_ALL=1)")
        pytest.skip(f"browser tests need a browser: {problem}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common import selenium_manager

    def no_downloads(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("Selenium Manager must not run: it would download a browser")
    selenium_manager.SeleniumManager.binary_paths = no_downloads  # type: ignore[method-assign]

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                 "--window-size=1200,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
