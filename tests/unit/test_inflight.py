"""The hand-off of ended runs from job threads to the worker's main thread."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

from queue_core import Job, JobStatus, SerializationError, create_queue
from queue_core.dispatch import SWITCH_INTERVAL
from queue_core.inflight import Finished, Run
from queue_core.model import Message


def a_run(job_id: str) -> Run:
    return Run(Message(id=job_id, payload=b"", ttr=1.0, attempt=1), None, None, None, 1.0)


def test_take_returns_what_ended_and_waits_only_when_nothing_did() -> None:
    finished = Finished()
    assert finished.take(None) == []
    started = time.monotonic()
    assert finished.take(0.1) == []
    assert time.monotonic() - started >= 0.09
    runs = [a_run(str(index)) for index in range(3)]
    for run in runs:
        finished.put(run)
    assert finished.take(5) == runs
    assert finished.take(None) == []


def test_a_run_put_from_another_thread_wakes_the_taker() -> None:
    finished = Finished()
    run = a_run("late")
    threading.Timer(0.05, finished.put, (run,)).start()
    started = time.monotonic()
    assert finished.take(5) == [run]
    assert time.monotonic() - started < 2


def test_a_signal_handler_that_outlasts_the_wait_does_not_make_it_endless() -> None:
    """On Python 3.11 ``SimpleQueue.get(timeout=)`` waits for good once a signal handler
    runs past its timeout: a worker told twice to stop never acted on it."""
    code = textwrap.dedent("""
        import signal, time
        from queue_core.inflight import Finished

        def busy(signum, frame):
            end = time.monotonic() + 0.2
            while time.monotonic() < end:
                pass

        signal.signal(signal.SIGALRM, busy)
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        print(Finished().take(0.1))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=20)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


class SwitchIntervalSeen(Job):
    seen: list[float] = []

    def execute(self, queue: object) -> None:
        SwitchIntervalSeen.seen.append(sys.getswitchinterval())


def test_jobs_on_threads_run_at_the_dispatch_switch_interval_and_it_is_restored_after() -> None:
    queue = create_queue({"driver": "memory://", "channel": "switch"})
    for _ in range(3):
        queue.push(SwitchIntervalSeen())
    before = sys.getswitchinterval()
    assert before > SWITCH_INTERVAL
    assert queue.run(concurrency=2) == 3
    assert SwitchIntervalSeen.seen == [SWITCH_INTERVAL] * 3
    assert sys.getswitchinterval() == before


class Echo(Job):
    ran: list[str] = []

    def __init__(self, word: str) -> None:
        self.word = word

    def execute(self, queue: object) -> None:
        Echo.ran.append(self.word)


def test_jobs_decoded_while_waiting_for_a_slot_run_as_decoded_and_bad_ones_fail() -> None:
    queue = create_queue({"driver": "memory://", "channel": "ahead"})
    good = queue.push(Echo("hello"))
    bad = queue.driver.push(b"not json", ttr=60)
    consumption = queue.consume()
    fetched = [consumption.next(0), consumption.next(0)]
    worker = queue.worker()
    worker.decode_ahead(fetched)
    assert isinstance(fetched[0].decoded[0], Echo)
    assert isinstance(fetched[1].decoded, SerializationError)
    fetched[0].payload = b"changed after the decode: not read again"
    for message in fetched:
        worker.process(message)
    consumption.close()
    assert Echo.ran == ["hello"]
    assert queue.status(good) is JobStatus.DONE
    assert queue.status(bad) is JobStatus.FAILED


def test_a_serializer_fault_while_decoding_ahead_is_left_to_prepare() -> None:
    queue = create_queue({"driver": "memory://", "channel": "ahead-fault"})
    queue.push(Echo("later"))
    consumption = queue.consume()
    message = consumption.next(0)
    worker = queue.worker()

    def broken(payload: bytes) -> object:
        raise RuntimeError("a serializer bug")

    # A worker that met job types with rate limits (tests/support/limited_jobs.py, once
    # imported by another test of this process) decoded it in next() already.
    message.decoded = None
    decode, queue.decode = queue.decode, broken  # type: ignore[method-assign]
    worker.decode_ahead([message])  # does not raise: the worker goes on
    assert message.decoded is None
    queue.decode = decode  # type: ignore[method-assign]
    worker.process(message)
    consumption.close()
    assert Echo.ran[-1] == "later"


class Gate(Job):
    """Waits until ``Gate.open`` is set (a few seconds at most)."""

    open = threading.Event()

    def execute(self, queue: object) -> None:
        Gate.open.wait(5)


class OpenGate(Job):
    """Opens the gate and waits for ``OpenGate.thread`` to end."""

    thread: threading.Thread | None = None

    def execute(self, queue: object) -> None:
        Gate.open.set()
        assert OpenGate.thread is not None
        OpenGate.thread.join(5)


def test_the_switch_interval_comes_back_when_dispatchers_of_two_threads_end_out_of_order(
        ) -> None:
    # A job may run a worker of its own: dispatchers then overlap in two threads, and the
    # one that started first may end first.
    before = sys.getswitchinterval()
    first = create_queue({"driver": "memory://", "channel": "first"})
    second = create_queue({"driver": "memory://", "channel": "second"})
    first.push(Gate())
    second.push(OpenGate())
    Gate.open.clear()
    other = threading.Thread(target=first.run, kwargs={"concurrency": 2})
    OpenGate.thread = other
    other.start()
    time.sleep(0.2)  # its dispatcher runs; this thread's starts after it and ends after it
    assert second.run(concurrency=2) == 1
    assert not other.is_alive()
    assert sys.getswitchinterval() == before
