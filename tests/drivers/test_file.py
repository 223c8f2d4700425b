"""File driver specifics: markers without data blocks, segment collection, damaged
records, URLs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from queue_core.drivers.file import FileDriver, records, segments
from queue_core.drivers.file.consumer import BULK_ADOPT, DirWatch

from queue_core import ConfigError, DriverError, JobStatus, Message, Queue, create_queue
from queue_core.consumer import Consumer
from tests.support.jobs import Record, read_lines


@pytest.fixture
def queue(tmp_path: Path) -> Queue:
    return create_queue({"driver": f"file://{tmp_path}/q", "imports": ["tests.support.jobs"]})


def _root(queue: Queue) -> Path:
    driver = queue.driver
    assert isinstance(driver, FileDriver)
    return driver.root


def _take(consumer: Consumer) -> Message | None:
    """The next ready job, begun, as a worker takes it; None when there is none."""
    got = consumer.fetch(1, 0)
    if not got:
        return None
    consumer.begin(got[0])
    return got[0]


def test_markers_are_symlinks_without_data_blocks(queue: Queue, tmp_path: Path) -> None:
    ids = queue.push_many([Record(str(tmp_path / "j"), f"r{i}") for i in range(20)])
    queue.push(Record(str(tmp_path / "j"), "later"), delay=60)
    os.sync()
    root = _root(queue)
    markers = [root / "new" / job_id for job_id in ids]
    assert all(marker.is_symlink() for marker in markers)
    assert all(os.lstat(marker).st_blocks == 0 for marker in markers)
    delayed = next((root / "delayed").iterdir())
    assert "|" in os.readlink(delayed) and os.lstat(delayed).st_blocks == 0
    assert len(list((root / "segments").iterdir())) == 1


def test_segments_are_deleted_once_their_jobs_are_gone(queue: Queue, tmp_path: Path) -> None:
    journal = str(tmp_path / "j")
    queue.push_many([Record(journal, f"r{i}") for i in range(50)])
    queue.close()  # seals the segment this process wrote
    worker = create_queue({"driver": f"file://{tmp_path}/q"})
    assert worker.run() == 50
    assert len(read_lines(journal)) == 50
    driver = worker.driver
    assert isinstance(driver, FileDriver)
    driver._collect(time.time_ns())
    assert list((_root(worker) / "segments").iterdir()) == []


def test_a_segment_with_a_live_job_is_kept(queue: Queue, tmp_path: Path) -> None:
    journal = str(tmp_path / "j")
    queue.push_many([Record(journal, "a"), Record(journal, "b")])
    queue.close()
    worker = create_queue({"driver": f"file://{tmp_path}/q"})
    consumer = worker.driver.open_consumer()
    message = _take(consumer)
    assert message is not None
    consumer.ack(message)
    consumer.close()
    worker.driver._collect(time.time_ns())  # type: ignore[attr-defined]
    assert len(list((_root(worker) / "segments").iterdir())) == 1
    assert worker.run() == 1
    worker.driver._collect(time.time_ns())  # type: ignore[attr-defined]
    assert list((_root(worker) / "segments").iterdir()) == []


def test_an_orphan_record_of_a_crashed_push_is_reclaimed(tmp_path: Path) -> None:
    driver = FileDriver(tmp_path / "q")
    driver._appender.append(records.encode({"id": "f" * 32, "ttr": 5}, b"{}"))  # no marker
    segment = next((driver.root / "segments").iterdir())
    driver._appender.writer = None  # the pushing process died without sealing
    driver._collect(time.time_ns())
    assert segment.exists()  # too young to judge
    old = time.time_ns() - int((segments.ABANDONED_AGE + 60) * 1e9)
    os.utime(segment, ns=(old, old))
    driver._collect(time.time_ns())
    assert not segment.exists()


def test_kept_jobs_do_not_pin_segments(tmp_path: Path) -> None:
    queue = create_queue({"driver": f"file://{tmp_path}/q", "keep_completed": True})
    job_id = queue.push(Record(str(tmp_path / "j"), "a"))
    queue.close()
    worker = create_queue({"driver": f"file://{tmp_path}/q", "keep_completed": True,
                           "imports": ["tests.support.jobs"]})
    worker.run()
    worker.driver._collect(time.time_ns())  # type: ignore[attr-defined]
    assert list((_root(worker) / "segments").iterdir()) == []
    assert worker.get(job_id).result == "a"


def test_a_damaged_record_is_moved_to_failed_and_the_worker_goes_on(queue: Queue,
                                                                     tmp_path: Path) -> None:
    journal = str(tmp_path / "j")
    os.symlink("0123456789abcdef:0:40", _root(queue) / "new" / ("0" * 32))
    queue.push(Record(journal, "fine"))
    queue.run()
    assert read_lines(journal) == ["fine"]
    assert queue.status("0" * 32) is JobStatus.FAILED
    assert queue.get("0" * 32).error.type == "DamagedJobRecord"


def test_fsync_mode_works(tmp_path: Path) -> None:
    queue = create_queue({"driver": f"file://{tmp_path}/q?fsync=1",
                          "imports": ["tests.support.jobs"]})
    assert queue.driver.fsync  # type: ignore[attr-defined]
    queue.push(Record(str(tmp_path / "j"), "a"))
    queue.push(Record(str(tmp_path / "j"), "b"), delay=0.1)
    time.sleep(0.15)
    assert queue.run() == 2


@pytest.mark.parametrize("url, root", [
    ("file:///tmp/qc-abs", "/tmp/qc-abs/queue"),
    ("file://./rel-dir", "./rel-dir/queue"),
    ("file://localhost/tmp/qc-host", "/tmp/qc-host/queue"),
])
def test_url_forms(url: str, root: str, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    driver = FileDriver.from_url(url)
    assert str(driver.root) == str(Path(root))


@pytest.mark.parametrize("url, key", [
    ("file:///tmp/x?fsink=1", "driver.fsink"),
    ("file:///tmp/x?poll_interval=soon", "driver.poll_interval"),
    ("file://", "driver"),
])
def test_bad_urls_name_the_key(url: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        FileDriver.from_url(url)
    assert caught.value.key == key


def test_a_path_that_cannot_be_a_directory_is_a_driver_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DriverError, match="cannot create the file queue"):
        FileDriver(blocker)


def test_jobs_pushed_while_a_backlog_is_adopted_are_not_forgotten(tmp_path: Path) -> None:
    # A worker adopts a big push into its in-memory heap; jobs pushed after that stay in
    # new/. Its next listing of new/ finds them, but an older adopted job wins the claim:
    # the listing must not be thrown away, since new/ will not change again to say so.
    journal = str(tmp_path / "j")
    pusher = create_queue({"driver": f"file://{tmp_path}/q"})
    worker = create_queue({"driver": f"file://{tmp_path}/q"}).driver.open_consumer()
    pusher.push_many([Record(journal, f"a{i}") for i in range(BULK_ADOPT + 1)])
    taken = [_take(worker)]
    pusher.push_many([Record(journal, f"b{i}") for i in range(3)])
    time.sleep(2 * DirWatch.QUIET_NS / 1e9)  # new/ is quiet: a clean listing
    while (message := _take(worker)) is not None:
        taken.append(message)
    assert len(taken) == BULK_ADOPT + 4


def test_a_job_given_back_is_not_charged(tmp_path: Path) -> None:
    driver = FileDriver(tmp_path / "q")
    job_id = driver.push(b"{}", ttr=60)
    consumer = driver.open_consumer()
    (fetched,) = consumer.fetch(1, 0)
    assert driver.status(job_id) is JobStatus.RESERVED
    consumer.give_back([fetched])
    assert driver.status(job_id) is JobStatus.WAITING
    assert driver.get(job_id).attempt == 0  # type: ignore[union-attr]
    again = _take(consumer)
    assert again is not None and again.id == job_id
    assert again.attempt == 1 and not again.redelivered
    consumer.close()
    driver.close()


@pytest.mark.parametrize("begun", [False, True], ids=["fetched", "begun"])
def test_a_lost_run_counts_only_once_begun(tmp_path: Path, begun: bool) -> None:
    """A worker that dies holding a job: its lease brings the job back, as a lost run only
    if the worker had begun it."""
    driver = FileDriver(tmp_path / "q", lease_grace=0.05)
    job_id = driver.push(b"{}", ttr=0.05)
    lost = driver.open_consumer()
    (fetched,) = lost.fetch(1, 0)
    if begun:
        lost.begin(fetched)
    time.sleep(0.3)
    other = driver.open_consumer()
    (message,) = other.fetch(1, 2)
    assert message.id == job_id
    assert message.redelivered is begun
    assert message.attempt == (2 if begun else 1)
    for closable in (lost, other, driver):
        closable.close()


def test_one_store_serves_pushing_threads(tmp_path: Path) -> None:
    """Threads pushing through one store at once: every record is whole and where its
    marker says."""
    import threading

    from queue_core.model import PushRequest
    driver = FileDriver(tmp_path / "q")
    threads, per_thread = 8, 150
    start = threading.Barrier(threads)

    def push(number: int) -> None:
        start.wait()
        for n in range(per_thread):
            if n % 3:
                driver.push(f"{number}-{n}".encode(), ttr=60)
            else:
                driver.push_many([PushRequest(f"{number}-{n}".encode(), 60)])

    pushers = [threading.Thread(target=push, args=(number,)) for number in range(threads)]
    for thread in pushers:
        thread.start()
    for thread in pushers:
        thread.join()
    consumer = driver.open_consumer()
    payloads = []
    while (message := _take(consumer)) is not None:
        payloads.append(message.payload.decode())
        consumer.ack(message)
    assert sorted(payloads) == sorted(f"{t}-{n}" for t in range(threads)
                                      for n in range(per_thread))
    assert driver.info()[JobStatus.FAILED] == 0
    consumer.close()
    driver.close()


def test_a_record_with_a_damaged_length_does_not_stall_the_collector(tmp_path: Path) -> None:
    import threading
    driver = FileDriver(tmp_path / "q")
    segment = driver.root / "segments" / ("ab" * 8)
    segment.write_bytes(records.header(0, 1, False, 0, dead=True) + records.SEALED)
    collector = threading.Thread(target=driver._collect, args=(time.time_ns(),), daemon=True)
    collector.start()
    collector.join(10)
    assert not collector.is_alive()
    driver.close()


def test_marks_of_jobs_that_are_gone_are_purged(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from queue_core.drivers.file import marks as file_marks

    from queue_core import ErrorInfo, Progress
    queue = create_queue({"driver": f"file://{tmp_path}/q", "imports": ["tests.support.jobs"],
                          "keep_failed": True})
    driver = queue.driver
    assert isinstance(driver, FileDriver)
    gone = queue.push(Record(str(tmp_path / "j"), "gone"))
    kept = queue.push(Record(str(tmp_path / "j"), "kept"))
    waiting = queue.push(Record(str(tmp_path / "j"), "waiting"))
    for job_id in (gone, kept, waiting):
        driver._marks.write(job_id, file_marks.PROGRESS, b'{"f": 0.5}')
        driver._marks.write(job_id, file_marks.CANCEL, b"1")
    (driver.root / "marks" / ".leftover.tmp").write_bytes(b"x")
    assert driver.remove(gone)
    driver._marks.write(gone, file_marks.PROGRESS, b'{"f": 0.5}')  # a late write
    assert driver.cancel(kept, error=ErrorInfo("E", "m")) == "failed"
    driver._marks.write(kept, file_marks.PROGRESS, b'{"f": 0.5}')
    driver._marks.write(kept, file_marks.CANCEL, b"1")
    driver._collect(time.time_ns())  # too young to purge
    assert len(os.listdir(driver.root / "marks")) == 6
    monkeypatch.setattr(file_marks, "PURGE_AGE", -1.0)
    driver._collect(time.time_ns())
    assert sorted(os.listdir(driver.root / "marks")) == sorted(
        [f"{kept}.progress", f"{waiting}.progress", f"{waiting}.cancel"])
    assert queue.get(kept).progress == Progress(0.5, "", 0.0)
