"""The dashboard in a real browser, against a real ``queue-core dashboard`` process and a
real worker (``queue-core listen``), on the file and Redis drivers.

Screenshots go to the test's tmp directory (``screenshots/``); the path is printed."""

from __future__ import annotations

import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from queue_core import JobStatus, Queue, create_queue
from tests.support.drivers import DriverSpec
from tests.support.jobs import Fail, Noop, Record
from tests.support.procs import queue_core, stop, wait_for

SCRIPT = ("<script>window.pwned=1;document.title='pwned';alert('pwned')</script>"
          "<img src=x onerror=window.pwned=2>")
"""No double quote: the payload is shown as JSON, which would escape one."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def http_status(url: str, data: bytes | None = None, cookie: str = "") -> int:
    request = urllib.request.Request(url, data=data, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@dataclass
class Stack:
    queue: Queue
    url: str
    shots: Path
    journal: str

    def shot(self, browser: Any, name: str) -> Path:
        path = self.shots / f"{name}.png"
        browser.save_screenshot(str(path))
        return path


@pytest.fixture
def stack(driver_spec: DriverSpec, tmp_path: Path) -> Iterator[Stack]:
    """A queue on a fresh channel, a dashboard process serving it and a worker."""
    settings = driver_spec.settings(tmp_path, f"t{uuid.uuid4().hex[:12]}")
    settings.update({"imports": ["tests.support.jobs"], "keep_completed": True})
    queue = create_queue(settings)
    port = free_port()
    dashboard = queue_core(settings, "dashboard", "--port", str(port),
                           stdout=subprocess.DEVNULL)
    worker = queue_core(settings, "listen", "--timeout", "1", stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"screenshots: {shots}")
    try:
        wait_for(lambda: http_status(url + "/") == 200, 15, "the dashboard to answer")
        yield Stack(queue, url, shots, str(tmp_path / "journal"))
    finally:
        for process in (worker, dashboard):
            stop(process)
        try:
            if queue.capabilities.clear:
                queue.clear()
        finally:
            queue.close()
            if driver_spec.cleanup is not None:
                driver_spec.cleanup(settings)


def wait_status(queue: Queue, job_id: str, status: JobStatus) -> None:
    wait_for(lambda: queue.status(job_id) is status, 15, f"job {job_id} to be {status}")


def text_of(browser: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By
    return str(browser.find_element(By.ID, element_id).text)


@pytest.mark.drivers("file", "redis")
def test_overview_traceback_and_retry_until_done(browser: Any, stack: Stack) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    queue = stack.queue
    for _ in range(2):
        queue.push(Noop(), delay=3600)
    flaky = queue.push(Fail(stack.journal, "flaky", times=1))
    fine = queue.push(Record(stack.journal, "fine"))
    assert flaky is not None and fine is not None
    wait_status(queue, flaky, JobStatus.FAILED)
    wait_status(queue, fine, JobStatus.DONE)
    name = queue.driver.channel

    browser.delete_all_cookies()
    browser.get(stack.url + "/")
    counts = {status: text_of(browser, f"count-{name}-{status.value}") for status in JobStatus}
    assert counts == {JobStatus.WAITING: "0", JobStatus.DELAYED: "2", JobStatus.RESERVED: "0",
                      JobStatus.DONE: "1", JobStatus.FAILED: "1"}
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart rect > title")  # the bars
    stack.shot(browser, "overview")

    browser.find_element(By.LINK_TEXT, "failed").click()
    browser.find_element(By.LINK_TEXT, flaky).click()
    assert text_of(browser, "field-status") == "failed"
    trace = text_of(browser, "traceback")
    assert "Traceback (most recent call last)" in trace
    assert "RuntimeError: flaky failed on run 1" in trace
    stack.shot(browser, "failed-job")

    browser.find_element(By.XPATH, "//button[text()='Retry']").click()
    alert = WebDriverWait(browser, 10).until(expected_conditions.alert_is_present())
    assert "back to waiting" in alert.text
    alert.accept()
    WebDriverWait(browser, 10).until(
        lambda b: "Job sent back to waiting." in b.find_element(By.ID, "flash").text)
    wait_status(queue, flaky, JobStatus.DONE)
    browser.refresh()
    assert text_of(browser, "field-status") == "done"
    stack.shot(browser, "retried-job")
    browser.get(stack.url + "/")
    assert text_of(browser, f"count-{name}-done") == "2"
    assert text_of(browser, f"count-{name}-failed") == "0"


@pytest.mark.drivers("file", "redis")
def test_script_in_a_payload_is_text_and_forged_actions_are_refused(
        browser: Any, stack: Stack) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    queue = stack.queue
    hostile = queue.push(Record(stack.journal, SCRIPT))
    failed = queue.push(Fail(stack.journal + ".fail", SCRIPT, times=1))
    assert hostile is not None and failed is not None
    wait_status(queue, hostile, JobStatus.DONE)
    wait_status(queue, failed, JobStatus.FAILED)
    name = queue.driver.channel

    browser.delete_all_cookies()
    for job_id in (hostile, failed):
        browser.get(f"{stack.url}/q/{name}/job/{job_id}")
        assert SCRIPT in text_of(browser, "payload")
        assert browser.title == f"Job {job_id} · queue-core"
        assert browser.execute_script("return window.pwned === undefined")
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018 - reading it is the check
    assert SCRIPT in text_of(browser, "error")
    browser.get(f"{stack.url}/q/{name}/jobs/failed")
    assert browser.execute_script("return window.pwned === undefined")
    assert browser.title.startswith(f"{name}: failed jobs")
    stack.shot(browser, "hostile-payload")

    # A form posted without the CSRF token (as another site's page would) is refused,
    # and so is one with a made-up token; the job stays failed.
    retry_url = f"{stack.url}/q/{name}/job/{failed}/retry"
    browser.execute_script(
        "var f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];"
        "var c = document.createElement('input'); c.name = 'confirmed'; c.value = '1';"
        "f.appendChild(c); document.body.appendChild(f); f.submit();", retry_url)
    assert "403" in browser.title and "security token" in browser.page_source
    session = browser.get_cookie("qc_dash_session")
    assert session is not None
    cookie = f"qc_dash_session={session['value']}"
    assert http_status(retry_url, b"confirmed=1&csrf=" + b"0" * 64, cookie) == 403
    assert http_status(retry_url, b"confirmed=1", cookie) == 403
    assert queue.status(failed) is JobStatus.FAILED
