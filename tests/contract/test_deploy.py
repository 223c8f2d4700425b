"""A rolling deploy: jobs pushed by one version of the job classes run on a real worker
process that has the next version (fields added with defaults, a field removed, a
required field added), on every driver with a worker."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from queue_core import JobInfo, JobStatus, Queue, create_queue
from tests.support.jobs import read_lines

MODULE = "deploy_jobs"

VERSION_1 = """
    from dataclasses import dataclass

    from queue_core import Job
    from tests.support.jobs import append


    @dataclass
    class Mail(Job):
        journal: str
        to: str
        legacy: str = "gone in v2"

        def execute(self, queue):
            append(self.journal, f"mail {self.to}")


    class Invite(Job):
        def __init__(self, journal, to):
            self.journal = journal
            self.to = to

        def execute(self, queue):
            append(self.journal, f"invite {self.to}")


    @dataclass
    class Receipt(Job):
        journal: str
        order: int

        def execute(self, queue):
            append(self.journal, f"receipt {self.order}")
"""

VERSION_2 = """
    import datetime as dt
    from dataclasses import dataclass, field
    from decimal import Decimal

    from queue_core import Job
    from tests.support.jobs import append


    @dataclass
    class Mail(Job):
        journal: str
        to: str
        cc: list = field(default_factory=list)
        sent: dt.date = dt.date(2026, 1, 1)

        def execute(self, queue):
            self.cc.append("audit@x")
            append(self.journal, f"mail {self.to} cc={','.join(self.cc)} sent={self.sent}")


    class Invite(Job):
        def __init__(self, journal, to, lang="en"):
            self.journal = journal
            self.to = to
            self.lang = lang

        def execute(self, queue):
            append(self.journal, f"invite {self.to} lang={self.lang}")


    @dataclass
    class Receipt(Job):
        journal: str
        order: int
        amount: Decimal

        def execute(self, queue):
            append(self.journal, f"receipt {self.order} {self.amount}")
"""


def _failed(queue: Queue, job_id: str) -> JobInfo | None:
    """The job's record if it is FAILED (looked up, or listed where the driver lists only
    failed jobs)."""
    if queue.capabilities.status:
        info = queue.get(job_id)
        return info if info.status is JobStatus.FAILED else None
    return next((info for info in queue.jobs(JobStatus.FAILED) if info.id == job_id), None)


def _write(folder: Path, source: str) -> Path:
    folder.mkdir()
    (folder / f"{MODULE}.py").write_text(textwrap.dedent(source))
    return folder


@pytest.mark.needs("!runs_at_push", "multiprocess")
def test_jobs_pushed_by_the_old_class_run_on_the_new_one(
        queue_settings, journal: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.procs import queue_core, stop, wait_for
    old = _write(tmp_path / "v1", VERSION_1)
    new = _write(tmp_path / "v2", VERSION_2)
    monkeypatch.syspath_prepend(str(old))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    import deploy_jobs as v1
    settings = queue_settings(imports=["tests.support.jobs", MODULE])
    queue = create_queue(settings)
    try:
        mails = [queue.push(v1.Mail(journal, f"m{n}")) for n in range(2)]
        invite = queue.push(v1.Invite(journal, "i0"))
        receipt = queue.push(v1.Receipt(journal, 7))
        assert None not in (*mails, invite, receipt)
        sys.modules.pop(MODULE)

        monkeypatch.setenv("PYTHONPATH", str(new))
        worker = queue_core(settings, "listen", "--timeout", "0.2")
        try:
            wait_for(lambda: len(read_lines(journal)) >= 3, 30, "the three compatible jobs")
            if queue.capabilities.failed_store:
                wait_for(lambda: _failed(queue, receipt), 30, "the receipt to fail")
        finally:
            code, _, err = stop(worker)
        assert code == 0, err
        assert sorted(read_lines(journal)) == [
            "invite i0 lang=en",
            "mail m0 cc=audit@x sent=2026-01-01", "mail m1 cc=audit@x sent=2026-01-01"]
        assert "Traceback" not in err
        assert f"{MODULE}.Mail" in err and "'legacy'" in err, \
            "the dropped field is named in a warning"
        assert err.count("'legacy'") == 1, "one warning per job type and field"
        if queue.capabilities.failed_store:
            info = _failed(queue, receipt)
            assert info is not None and info.error is not None
            assert info.error.type == "queue_core.errors.SerializationError"
            assert "required field 'amount' is missing" in info.error.message
    finally:
        queue.close()
