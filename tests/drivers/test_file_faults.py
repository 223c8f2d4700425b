"""File driver under faults: a full disk, permissions, admin commands racing a worker,
entries whose record is gone, markers that point outside the queue."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from queue_core.drivers.file import FileDriver, records, segments

from queue_core import DriverError, ErrorInfo, JobStatus, Queue, create_queue
from tests.support.jobs import Fail, Record, read_lines
from tests.support.local import umask
from tests.support.procs import ROOT, worker_env

SETTINGS_EXTRA = {"imports": ["tests.support.jobs"]}


def _queue(path: Path, **extra: Any) -> Queue:
    return create_queue({"driver": f"file://{path}", **SETTINGS_EXTRA, **extra})


def _root(queue: Queue) -> Path:
    assert isinstance(queue.driver, FileDriver)
    return queue.driver.root


# -- a full disk ------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs mounted for the test (the machine's tests run as root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(queue: Queue, journal: str, data: str) -> tuple[list[str], int]:
    """Push until the disk is full; the ids pushed and the number of the failed push."""
    pushed: list[str] = []
    for number in range(10_000):
        try:
            job_id = queue.push(Record(journal, f"a{number}", data))
        except DriverError as exc:
            assert "No space left on device" in str(exc)
            return pushed, number
        assert job_id is not None
        pushed.append(job_id)
    raise AssertionError("the disk never filled up")


def test_pushes_after_a_full_disk_are_stored_whole(small_disk: Path, tmp_path: Path) -> None:
    journal = str(tmp_path / "journal")
    filler = small_disk / "filler"
    filler.write_bytes(b"x" * 1_000_000)
    queue = _queue(small_disk / "q")
    pushed, failed_at = _fill(queue, journal, "y" * 20_000)
    filler.unlink()  # an operator frees space; the same process goes on pushing
    later = [queue.push(Record(journal, f"b{number}", "z" * 20_000)) for number in range(10)]
    worker = _queue(small_disk / "q")
    worker.run()
    ran = read_lines(journal)
    assert ran == [f"a{n}" for n in range(failed_at)] + [f"b{n}" for n in range(10)]
    assert worker.info()[JobStatus.FAILED] == 0
    assert all(worker.status(job_id) is JobStatus.DONE for job_id in pushed + later)


def test_a_write_cut_short_does_not_shift_later_records(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same without a tmpfs: a write that stores half the data, then fails."""
    journal = str(tmp_path / "journal")
    queue = _queue(tmp_path / "q")
    queue.push(Record(journal, "before"))
    real_write = os.write
    calls = {"n": 0}

    def half_then_full(fd: int, data: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(DriverError, match="No space left"):
        queue.push(Record(journal, "lost"))
    monkeypatch.setattr(os, "write", real_write)
    queue.push_many([Record(journal, f"after{n}") for n in range(3)])
    _queue(tmp_path / "q").run()
    assert read_lines(journal) == ["before", "after0", "after1", "after2"]


def test_a_batch_whose_markers_cannot_all_be_made_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    queue = _queue(tmp_path / "q")
    real_symlink = os.symlink
    made = {"n": 0}

    def third_fails(src: str, dst: str) -> None:
        made["n"] += 1
        if made["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_symlink(src, dst)
    monkeypatch.setattr(os, "symlink", third_fails)
    with pytest.raises(DriverError):
        queue.push_many([Record(str(tmp_path / "j"), f"r{n}") for n in range(5)])
    monkeypatch.setattr(os, "symlink", real_symlink)
    assert sum(queue.info().values()) == 0


# -- permissions ------------------------------------------------------------------------

def _modes(root: Path) -> tuple[set[int], set[int]]:
    files, folders = set(), {stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        (folders if path.is_dir() else files).add(mode)
    return files, folders


def _exercise(queue: Queue, journal: str) -> None:
    """Make every kind of file: a segment, a rewritten record, a failed job."""
    queue.push(Record(journal, "a"))
    queue.push(Fail(journal, "f"))
    queue.run()
    assert queue.info()[JobStatus.FAILED] == 1




def test_files_are_the_owners_alone_by_default(tmp_path: Path) -> None:
    with umask(0o022):
        _exercise(_queue(tmp_path / "q"), str(tmp_path / "j"))
    files, folders = _modes(tmp_path / "q")
    assert files == {0o600}
    assert folders == {0o700}


@pytest.mark.parametrize("how", ["option", "url"])
def test_mode_shares_the_queue_with_the_group_whatever_theumask(tmp_path: Path,
                                                                 how: str) -> None:
    with umask(0o077):
        if how == "option":
            queue = create_queue({"driver": {"url": f"file://{tmp_path}/q", "mode": 0o660},
                                  **SETTINGS_EXTRA})
        else:
            queue = _queue(Path(f"{tmp_path}/q?mode=660"))
        _exercise(queue, str(tmp_path / "j"))
    files, folders = _modes(tmp_path / "q")
    assert files == {0o660}
    assert folders == {0o770}


@pytest.mark.parametrize("mode", [0o644 | 0o1000, 0o400, 0o066, "rw"])
def test_a_bad_mode_is_refused(tmp_path: Path, mode: Any) -> None:
    with pytest.raises(Exception, match="mode must be"):
        FileDriver(tmp_path / "q", mode=mode)


# -- admin commands racing a worker ------------------------------------------------------

def _reserve_failing(queue: Queue, journal: str, earlier_error: bool) -> Any:
    """A reserved Fail job; with ``earlier_error`` its record was rewritten once already
    (to records/), as after a retry."""
    job_id = queue.push(Fail(journal, "f"), attempts=3 if earlier_error else None)
    if earlier_error:
        queue.run(max_jobs=1)
        assert queue.status(job_id) is JobStatus.WAITING
    consumer = queue.driver.open_consumer()
    (message,) = consumer.fetch(1, 0)
    assert message.id == job_id
    consumer.begin(message)
    return consumer, message


@pytest.mark.parametrize("earlier_error", [False, True], ids=["segment", "records"])
@pytest.mark.parametrize("admin", ["remove", "clear"])
def test_a_job_removed_while_its_failure_is_saved_stays_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, admin: str,
        earlier_error: bool) -> None:
    """The admin command lands between the worker writing the job's new record and
    pointing its marker there: the job must neither come back nor leave an entry whose
    record is gone."""
    queue = _queue(tmp_path / "q")
    other = _queue(tmp_path / "q")  # the CLI, another process
    consumer, message = _reserve_failing(queue, str(tmp_path / "j"), earlier_error)
    driver = queue.driver
    assert isinstance(driver, FileDriver)
    real = segments.Files.write_record_file

    def then_admin(self: Any, job_id: str, data: bytes) -> Any:
        written = real(self, job_id, data)
        if admin == "remove":
            assert other.remove(job_id)
        else:
            other.clear()
        return written
    monkeypatch.setattr(segments.Files, "write_record_file", then_admin)
    consumer.fail(message, error=ErrorInfo("RuntimeError", "boom"))
    monkeypatch.undo()
    assert driver.status(message.id) is None
    assert sum(other.info().values()) == 0
    assert list((_root(queue) / "records").iterdir()) == []


def test_a_job_back_from_its_lease_is_not_saved_twice(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker past its lease saves a failure while another worker holds the job: the
    second holder's reservation stands, and no second entry appears."""
    queue = _queue(tmp_path / "q")
    consumer, message = _reserve_failing(queue, str(tmp_path / "j"), earlier_error=False)
    other = _queue(tmp_path / "q")
    other_consumer = other.driver.open_consumer()
    real = segments.Files.write_record_file
    taken: list[Any] = []

    def then_taken_back(self: Any, job_id: str, data: bytes) -> Any:
        written = real(self, job_id, data)
        reserved = next((_root(queue) / "reserved").iterdir())
        os.rename(reserved, _root(queue) / "new" / job_id)  # what lease recovery does
        got = other_consumer.fetch(1, 0)
        taken.append(got[0] if got else None)
        if got:
            other_consumer.begin(got[0])
        return written
    monkeypatch.setattr(segments.Files, "write_record_file", then_taken_back)
    consumer.fail(message, error=ErrorInfo("RuntimeError", "late"))
    monkeypatch.undo()
    assert taken[0] is not None and taken[0].id == message.id
    markers = [p.name for state in ("new", "waiting", "delayed", "reserved", "done", "failed")
               for p in (_root(queue) / state).iterdir()]
    assert len(markers) == 1 and markers[0].startswith(message.id + "~")
    assert other.status(message.id) is JobStatus.RESERVED


def test_retry_all_failed_ends_when_an_entry_has_lost_its_record(tmp_path: Path) -> None:
    queue = _queue(tmp_path / "q")
    journal = str(tmp_path / "j")
    for tag in ("a", "b", "c"):
        queue.push(Fail(journal, tag, times=1))
    queue.run()
    assert queue.info()[JobStatus.FAILED] == 3
    phantom = sorted((_root(queue) / "failed").iterdir())[1]
    for record in (_root(queue) / "records").iterdir():
        if record.name.startswith(phantom.name):
            record.unlink()
    settings = {"driver": f"file://{tmp_path}/q", **SETTINGS_EXTRA}
    done = subprocess.run([sys.executable, "-m", "queue_core", "--app",
                           "tests.support.app:queue", "retry", "--all-failed"],
                          env=worker_env(settings), cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"job {phantom.name} skipped" in done.stderr
    assert "2 failed jobs sent back to waiting; 1 could not be retried" in done.stdout
    assert queue.info()[JobStatus.WAITING] == 2


def test_retry_of_an_entry_without_its_record_says_so(tmp_path: Path) -> None:
    queue = _queue(tmp_path / "q")
    job_id = queue.push(Fail(str(tmp_path / "j"), "a"))
    queue.run()
    for record in (_root(queue) / "records").iterdir():
        record.unlink()
    with pytest.raises(DriverError, match="its record cannot be read"):
        queue.retry(job_id)
    assert queue.remove(job_id)
    assert sum(queue.info().values()) == 0


# -- markers are data too ----------------------------------------------------------------

@pytest.mark.parametrize("target", [
    "{victim}:0:{length}",
    "@/{victim}",
    "@..",
    "0123456789abcdef:zz:40",
    "",
])
def test_a_marker_never_leads_outside_the_queue(tmp_path: Path, target: str) -> None:
    """A marker is read back from the store: one naming a file outside the queue (a
    readable job record there) must not make the worker read or write that file."""
    queue = _queue(tmp_path / "q")
    victim = tmp_path / "victim"
    record = records.encode({"id": "x", "ttr": 5}, b'{"job":"nope","args":{}}')
    victim.write_bytes(record)
    job_id = uuid.uuid4().hex
    marker = _root(queue) / "new" / job_id
    relative = os.path.relpath(victim, _root(queue) / "segments")
    if target:
        os.symlink(target.format(victim=relative, length=f"{len(record):x}"), marker)
    else:
        marker.write_text("not a link")
    queue.push(Record(str(tmp_path / "j"), "fine"))
    queue.run()
    assert read_lines(str(tmp_path / "j")) == ["fine"]
    assert victim.read_bytes() == record
    assert queue.status(job_id) is JobStatus.FAILED
    assert queue.remove(job_id)
