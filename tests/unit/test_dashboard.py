"""The dashboard's WSGI app, called in-process (no server): pages, escaping, CSRF,
read-only mode, authentication, and the refusal to serve off loopback without it."""

from __future__ import annotations

import base64
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from queue_core import JobStatus, Queue, create_queue
from queue_core.dashboard import Dashboard
from queue_core.dashboard.server import InsecureBindError, make
from queue_core.model import RunningJob, WorkerInfo
from tests.support.jobs import Fail, Noop, Record
from tests.support.procs import ROOT
from tests.support.wsgi import Client

SCRIPT = "<script>document.title='pwned'</script>"


@pytest.fixture
def queue() -> Iterator[Queue]:
    built = create_queue({"driver": f"memory://dash{uuid.uuid4().hex[:8]}",
                          "keep_completed": True, "channel": "main"})
    yield built
    built.close()


def failed_job(queue: Queue, tmp_path: Path, tag: str = "boom") -> str:
    job_id = queue.push(Fail(str(tmp_path / "journal"), tag, times=1))
    assert job_id is not None
    queue.run()
    assert queue.status(job_id) is JobStatus.FAILED
    return job_id


def test_overview_shows_counts_chart_and_actions(queue: Queue, tmp_path: Path) -> None:
    queue.push(Noop(), delay=3600)
    queue.push(Noop(), delay=3600)
    failed_job(queue, tmp_path)
    done = queue.push(Noop())
    queue.run()
    assert done is not None and queue.status(done) is JobStatus.DONE
    page = Client(Dashboard(queue)).get("/")
    assert page.status == 200
    assert 'id="count-main-delayed" class="num">2<' in page.text
    assert 'id="count-main-failed" class="num">1<' in page.text
    assert 'id="count-main-done" class="num">1<' in page.text
    assert "<svg" in page.text and "Source: finish times of the completed and failed" in page.text
    assert "Retry all failed" in page.text and "Clear queue" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "no workers reported" in page.text  # heartbeats stored, none written
    assert 'id="oldest-main">none waits<' in page.text
    queue.push(Noop())
    page = Client(Dashboard(queue)).get("/")
    assert 'id="oldest-main">pushed 0 s ago<' in page.text


def test_workers_are_shown_from_their_heartbeats(queue: Queue) -> None:
    now = time.time()
    queue.driver.beat(WorkerInfo("w1", "h1", 42, queue.driver.channel, now - 60, now, 5.0,
                                 (RunningJob("j1", "mail.<send>", now - 12),), 7, 2, 31.5))
    queue.driver.beat(WorkerInfo("w2", "h2", 43, queue.driver.channel, now - 600, now - 100,
                                 5.0))
    page = Client(Dashboard(queue)).get("/")
    assert "Workers" in page.text and ">h1<" in page.text and ">42<" in page.text
    assert "mail.&lt;send&gt; (12 s)" in page.text and ">32 MB<" in page.text
    assert ">live<" in page.text and ">stopped beating<" in page.text


def test_no_workers_section_where_the_driver_stores_no_heartbeats() -> None:
    page = Client(Dashboard(create_queue({"driver": "sync://"}))).get("/")
    assert "Workers" not in page.text


def test_the_chart_says_not_available_when_nothing_is_kept() -> None:
    queue = create_queue({"driver": "sync://", "keep_failed": False})
    page = Client(Dashboard(queue)).get("/")
    assert page.status == 200
    assert "jobs per minute: not available" in page.text


def test_failed_list_and_detail_escape_payload_error_and_traceback(
        queue: Queue, tmp_path: Path) -> None:
    job_id = failed_job(queue, tmp_path, tag=SCRIPT)
    client = Client(Dashboard(queue))
    listing = client.get("/q/main/jobs/failed")
    assert listing.status == 200 and job_id in listing.text
    assert "<script>document" not in listing.text
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in listing.text
    assert "Traceback (most recent call last)" in listing.text
    detail = client.get(f"/q/main/job/{job_id}")
    assert detail.status == 200
    assert "<script>document" not in detail.text
    assert 'id="traceback"' in detail.text and "RuntimeError" in detail.text
    assert 'id="payload"' in detail.text and "&lt;script&gt;" in detail.text
    # The only script on the page is the package's own file.
    assert detail.text.count("<script") == 1 and "static/dashboard.js" in detail.text


def test_retry_with_csrf_and_confirmation(queue: Queue, tmp_path: Path) -> None:
    job_id = failed_job(queue, tmp_path)
    client = Client(Dashboard(queue))
    token = client.get(f"/q/main/job/{job_id}").csrf()
    # Not confirmed (no script ran): a confirmation page, nothing done yet.
    asked = client.post(f"/q/main/job/{job_id}/retry", {"csrf": token, "confirmed": "0"})
    assert asked.status == 200 and 'id="question"' in asked.text
    assert queue.status(job_id) is JobStatus.FAILED
    done = client.post(f"/q/main/job/{job_id}/retry", {"csrf": asked.csrf(), "confirmed": "1"})
    assert done.status == 303 and done.headers["Location"].endswith("?flash=retried")
    assert queue.status(job_id) is JobStatus.WAITING
    queue.run()
    page = client.get(done.headers["Location"])
    assert 'id="field-status">done<' in page.text and "Job sent back to waiting." in page.text


def test_actions_without_a_valid_csrf_token_are_refused(queue: Queue, tmp_path: Path) -> None:
    job_id = failed_job(queue, tmp_path)
    client = Client(Dashboard(queue))
    token = client.get("/").csrf()
    for form in ({"confirmed": "1"}, {"csrf": "0" * 64, "confirmed": "1"}):
        answer = client.post(f"/q/main/job/{job_id}/retry", form)
        assert answer.status == 403
    # A token from another session (another browser's cookie) is no good either.
    stranger = Client(Dashboard(queue))
    stranger.get("/")
    assert stranger.post("/q/main/clear", {"csrf": token, "confirmed": "1"}).status == 403
    assert queue.status(job_id) is JobStatus.FAILED
    # The same token in its own session is accepted (here: asked to confirm).
    assert client.post("/q/main/job/x/retry", {"csrf": token}).status == 200


def test_remove_retry_all_and_clear(queue: Queue, tmp_path: Path) -> None:
    first, second = failed_job(queue, tmp_path, "a"), failed_job(queue, tmp_path, "b")
    client = Client(Dashboard(queue))
    token = client.get("/").csrf()
    assert client.post(f"/q/main/job/{first}/remove",
                       {"csrf": token, "confirmed": "1"}).status == 303
    assert queue.info()[JobStatus.FAILED] == 1
    assert client.post("/q/main/retry-failed", {"csrf": token, "confirmed": "1"}).status == 303
    assert queue.status(second) is JobStatus.WAITING
    assert client.post("/q/main/clear", {"csrf": token, "confirmed": "1"}).status == 303
    assert sum(queue.info().values()) == 0


def test_cancel_and_progress_on_the_job_page(queue: Queue, tmp_path: Path) -> None:
    from tests.support.jobs import Progressing
    job_id = queue.push(Record(str(tmp_path / "journal"), "later"), delay=3600)
    client = Client(Dashboard(queue))
    page = client.get(f"/q/main/job/{job_id}")
    assert f"/q/main/job/{job_id}/cancel" in page.text
    done = client.post(f"/q/main/job/{job_id}/cancel", {"csrf": page.csrf(), "confirmed": "1"})
    assert done.status == 303 and done.headers["Location"].endswith("?flash=cancelled")
    assert queue.status(job_id) is JobStatus.FAILED
    page = client.get(done.headers["Location"])
    assert "Job cancelled." in page.text and "JobCancelledError" in page.text
    assert f"/q/main/job/{job_id}/cancel" not in page.text  # finished: nothing to cancel
    again = client.post(f"/q/main/job/{job_id}/cancel", {"csrf": page.csrf(), "confirmed": "1"})
    assert again.status == 409
    shown = queue.push(Progressing(str(tmp_path / "journal"), "p", steps=4))
    queue.run()
    page = client.get(f"/q/main/job/{shown}")
    assert 'id="field-progress">100.0% step 4 (at ' in page.text


def test_read_only_hides_and_refuses_actions(queue: Queue, tmp_path: Path) -> None:
    job_id = failed_job(queue, tmp_path)
    client = Client(Dashboard(queue, read_only=True))
    page = client.get(f"/q/main/job/{job_id}")
    assert page.status == 200 and "<form" not in page.text and "read-only" in page.text
    assert "<form" not in client.get("/").text
    forged = Client(Dashboard(queue)).get("/").csrf()
    assert client.post(f"/q/main/job/{job_id}/retry",
                       {"csrf": forged, "confirmed": "1"}).status == 403
    assert queue.status(job_id) is JobStatus.FAILED


def test_token_auth(queue: Queue) -> None:
    app = Dashboard(queue, token="s3cret")
    client = Client(app)
    assert client.get("/").status == 401
    assert client.get("/login?token=wrong").status == 401
    assert client.get("/", headers={"Authorization": "Bearer s3cret"}).status == 200
    login = client.get("/login?token=s3cret")
    assert login.status == 303 and "s3cret" not in " ".join(login.cookies)
    assert client.get("/").status == 200


def test_basic_auth(queue: Queue) -> None:
    client = Client(Dashboard(queue, basic_auth="ops:pw"))
    refused = client.get("/")
    assert refused.status == 401 and "Basic" in refused.headers["WWW-Authenticate"]
    good = base64.b64encode(b"ops:pw").decode()
    bad = base64.b64encode(b"ops:nope").decode()
    assert client.get("/", headers={"Authorization": f"Basic {bad}"}).status == 401
    assert client.get("/", headers={"Authorization": f"Basic {good}"}).status == 200


def test_off_loopback_needs_auth(queue: Queue) -> None:
    with pytest.raises(InsecureBindError, match="QUEUE_CORE_DASHBOARD_TOKEN"):
        make(Dashboard(queue), "0.0.0.0", 0)
    server = make(Dashboard(queue, token="t"), "0.0.0.0", 0)
    server.server_close()
    for loopback in ("127.0.0.1", "localhost", "::1"):
        server = make(Dashboard(queue), loopback, 0)
        server.server_close()
    with pytest.raises(InsecureBindError):
        make(Dashboard(queue), "example.com", 0)  # a name may resolve anywhere


def test_cookies_are_secure_over_https(queue: Queue) -> None:
    plain = Client(Dashboard(queue)).get("/")
    assert "Secure" not in plain.cookies[0] and "HttpOnly" in plain.cookies[0]
    client = Client(Dashboard(queue))
    client.https = True
    secure = client.get("/")
    assert "; Secure" in secure.cookies[0] and "SameSite=Strict" in secure.cookies[0]


def test_the_command_refuses_a_public_bind_without_auth(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "queue_core", "--app",
                             f"file://{tmp_path}/q", "dashboard", "--host", "0.0.0.0",
                             "--port", "0"], capture_output=True, text=True, timeout=60,
                            env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "without authentication" in result.stderr and "QUEUE_CORE_DASHBOARD_TOKEN" in (
        result.stderr)


def test_mounted_under_a_prefix_links_stay_under_it(queue: Queue) -> None:
    page = Client(Dashboard(queue), script_name="/admin/queue").get("/")
    assert 'href="/admin/queue/static/dashboard.css"' in page.text
    assert 'action="/admin/queue/q/main/clear"' in page.text


def test_static_files_and_unknown_pages(queue: Queue) -> None:
    client = Client(Dashboard(queue))
    css = client.get("/static/dashboard.css")
    assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")
    assert client.get("/static/dashboard.js").status == 200
    assert client.get("/static/..%2Fapp.py").status == 404
    assert client.get("/static/app.py").status == 404
    assert client.get("/nope").status == 404
    assert client.get("/q/other/jobs/failed").status == 404
    assert client.get("/q/main/job/unknown").status == 200  # "not stored"
    assert client.request("GET", "/q/main/clear").status == 405


def test_several_named_queues(tmp_path: Path) -> None:
    first = create_queue({"driver": f"memory://a{uuid.uuid4().hex[:8]}"})
    second = create_queue({"driver": f"file://{tmp_path}/q"})
    second.push(Record(str(tmp_path / "j"), "x"))
    page = Client(Dashboard({"emails": first, "reports": second})).get("/")
    assert 'id="queue-emails"' in page.text and 'id="queue-reports"' in page.text
    assert 'id="count-reports-waiting" class="num">1<' in page.text


def test_the_django_view_serves_the_app_below_its_url(queue: Queue,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """django_view with a stand-in for django.http (Django is no dependency; the docs'
    snippet was checked against Django itself)."""
    import types

    from queue_core.dashboard.mount import django_view

    class HttpResponse(dict):  # type: ignore[type-arg]
        def __init__(self, body: bytes, status: int) -> None:
            super().__init__()
            self.body, self.status_code = body, status
            from http.cookies import SimpleCookie
            self.cookies: SimpleCookie = SimpleCookie()

    monkeypatch.setitem(sys.modules, "django.http",
                        types.SimpleNamespace(HttpResponse=HttpResponse))
    view = django_view(Dashboard(queue))
    assert getattr(view, "csrf_exempt", False)
    request = types.SimpleNamespace(
        META={"REQUEST_METHOD": "GET", "QUERY_STRING": "", "SERVER_NAME": "x",
              "SERVER_PORT": "80"}, path_info="/admin/queues/", body=b"", scheme="http")
    response = view(request, "/")
    assert response.status_code == 200
    assert b'href="/admin/queues/static/dashboard.css"' in response.body
    assert response["X-Frame-Options"] == "DENY" and "qc_dash_session" in response.cookies
