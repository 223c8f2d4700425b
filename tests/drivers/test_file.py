"""File driver specifics: markers without data blocks, segment collection, damaged
records, URLs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from queue_core.drivers import file as file_driver
from queue_core.drivers.file import FileDriver

from queue_core import ConfigError, DriverError, JobStatus, Queue, create_queue
from tests.support.jobs import Record, read_lines


@pytest.fixture
def queue(tmp_path: Path) -> Queue:
    return create_queue({"driver": f"file://{tmp_path}/q", "imports": ["tests.support.jobs"]})


def _root(queue: Queue) -> Path:
    driver = queue.driver
    assert isinstance(driver, FileDriver)
    return driver.root


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
    message = worker.driver.reserve(0)
    assert message is not None
    worker.driver.ack(message)
    worker.driver._collect(time.time_ns())  # type: ignore[attr-defined]
    assert len(list((_root(worker) / "segments").iterdir())) == 1
    assert worker.run() == 1
    worker.driver._collect(time.time_ns())  # type: ignore[attr-defined]
    assert list((_root(worker) / "segments").iterdir()) == []


def test_an_orphan_record_of_a_crashed_push_is_reclaimed(tmp_path: Path) -> None:
    driver = FileDriver(tmp_path / "q")
    driver._append(file_driver._record({"id": "f" * 32, "ttr": 5}, b"{}"))  # no marker
    segment = next((driver.root / "segments").iterdir())
    driver._writer = None  # the pushing process died without sealing
    driver._collect(time.time_ns())
    assert segment.exists()  # too young to judge
    old = time.time_ns() - int((file_driver.ABANDONED_AGE + 60) * 1e9)
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
    worker = create_queue({"driver": f"file://{tmp_path}/q"})
    pusher.push_many([Record(journal, f"a{i}") for i in range(file_driver.BULK_ADOPT + 1)])
    taken = [worker.driver.reserve(0)]
    pusher.push_many([Record(journal, f"b{i}") for i in range(3)])
    time.sleep(2 * file_driver._DirWatch.QUIET_NS / 1e9)  # new/ is quiet: a clean listing
    while (message := worker.driver.reserve(0)) is not None:
        taken.append(message)
    assert len(taken) == file_driver.BULK_ADOPT + 4
