"""Job types the tests push. Worker subprocesses import this module (settings 'imports').

Jobs leave their trace in a journal file, one line per event, appended with O_APPEND so
lines from several processes never interleave.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import os
import signal
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from queue_core import Backoff, Job, RetryableJob


def append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def read_lines(path: str) -> list[str]:
    try:
        with open(path) as handle:
            return handle.read().splitlines()
    except FileNotFoundError:
        return []


def count(path: str, line: str) -> int:
    return read_lines(path).count(line)


@dataclass
class Record(Job):
    """Appends its tag to the journal and returns it."""

    journal: str
    tag: str
    data: Any = None

    def execute(self, queue: Any) -> Any:
        append(self.journal, self.tag)
        return self.tag


@dataclass
class Noop(Job):
    def execute(self, queue: Any) -> None:
        return None


@dataclass
class Fail(Job):
    """Fails its first ``times`` runs (every run when None), then succeeds."""

    journal: str
    tag: str
    times: int | None = None

    def execute(self, queue: Any) -> str:
        runs = count(self.journal, self.tag)
        append(self.journal, self.tag)
        if self.times is None or runs < self.times:
            raise RuntimeError(f"{self.tag} failed on run {runs + 1}")
        return "ok"


@dataclass
class FailWithBackoff(Fail):
    backoff = Backoff.fixed(0.4)


@dataclass
class Retryable(RetryableJob):
    """can_retry and get_ttr come from its fields."""

    journal: str
    tag: str
    retry_until: int = 0
    ttr: float | None = None

    def execute(self, queue: Any) -> None:
        append(self.journal, self.tag)
        raise ValueError(f"{self.tag} always fails")

    def get_ttr(self) -> float | None:
        return self.ttr

    def can_retry(self, attempt: int, error: BaseException) -> bool | None:
        return attempt < self.retry_until


def pause(seconds: float) -> None:
    """Sleep in slices, back in Python between them: ttr interrupts a job thread there (an
    exception raised in a thread waits for a call in C to return, see job_threads.py)."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.05))


@dataclass
class Sleep(Job):
    """Writes 'start <tag>', sleeps, writes 'end <tag>'."""

    journal: str
    tag: str
    seconds: float

    def execute(self, queue: Any) -> str:
        append(self.journal, f"start {self.tag}")
        pause(self.seconds)
        append(self.journal, f"end {self.tag}")
        return self.tag


@dataclass
class SleepOnce(Job):
    """Sleeps on its first run only (a run a test kills), then finishes at once."""

    journal: str
    tag: str
    seconds: float

    def execute(self, queue: Any) -> str:
        first = count(self.journal, f"start {self.tag}") == 0
        append(self.journal, f"start {self.tag}")
        if first:
            pause(self.seconds)
        append(self.journal, f"end {self.tag}")
        return self.tag


@dataclass
class WaitFor(Job):
    """Waits until the file ``path`` exists (at most ``seconds``): a job a test holds."""

    path: str
    seconds: float

    def execute(self, queue: Any) -> None:
        end = time.monotonic() + self.seconds
        while not os.path.exists(self.path) and time.monotonic() < end:
            time.sleep(0.02)


@dataclass
class Stubborn(Job):
    """Swallows every exception, the ttr interrupt included, for ``seconds``."""

    journal: str
    seconds: float

    def execute(self, queue: Any) -> None:
        end = time.monotonic() + self.seconds
        while time.monotonic() < end:
            try:
                time.sleep(0.05)
            except Exception as exc:
                append(self.journal, f"swallowed {type(exc).__name__}")
        append(self.journal, "returned")


@dataclass
class KillWorker(Job):
    """Kills the process running it, every time."""

    journal: str
    tag: str

    def execute(self, queue: Any) -> None:
        append(self.journal, f"start {self.tag}")
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class Exit(Job):
    """Calls sys.exit inside the job."""

    def execute(self, queue: Any) -> None:
        raise SystemExit(3)


@dataclass
class Payload(Job):
    """Carries values of every JSON type and returns them."""

    values: dict[str, Any] = field(default_factory=dict)

    def execute(self, queue: Any) -> dict[str, Any]:
        return self.values


@dataclass
class Boom(Job):
    """Fails every run at once and leaves no trace (thousands of failed jobs, quickly)."""

    n: int = 0

    def execute(self, queue: Any) -> None:
        raise RuntimeError(f"boom {self.n}")


@dataclass
class Abort(Job):
    """Crashes the process running it the hard way (SIGABRT, like a segfault)."""

    journal: str
    tag: str

    def execute(self, queue: Any) -> None:
        append(self.journal, f"start {self.tag}")
        os.abort()


class TemporaryError(Exception):
    """A custom error class, to check that isolated children send it back as itself."""


@dataclass
class Temporary(RetryableJob):
    """Fails with TemporaryError ``times`` times; retried only for that error type."""

    journal: str
    tag: str
    times: int = 1

    def execute(self, queue: Any) -> str:
        runs = count(self.journal, self.tag)
        append(self.journal, self.tag)
        if runs < self.times:
            raise TemporaryError(f"{self.tag} temporarily failed")
        return f"{self.tag} pid {os.getpid()}"

    def can_retry(self, attempt: int, error: BaseException) -> bool:
        return isinstance(error, TemporaryError) and attempt < 5


@dataclass
class Pusher(Job):
    """Pushes a Record job from inside a job."""

    journal: str
    tag: str

    def execute(self, queue: Any) -> str | None:
        append(self.journal, "pusher")
        return queue.push(Record(self.journal, self.tag))  # type: ignore[no-any-return]


@dataclass
class Chaos(Job):
    """'start <tag> <pid>', a moment of work, 'end <tag> <pid>': a run a kill can land in."""

    journal: str
    tag: str
    seconds: float = 0.003

    def execute(self, queue: Any) -> None:
        append(self.journal, f"start {self.tag} {os.getpid()}")
        time.sleep(self.seconds)
        append(self.journal, f"end {self.tag} {os.getpid()}")


class FailOnceError(Exception):
    """The failure a FailOnce job raises on its first run; never retried automatically."""


@dataclass
class FailOnce(RetryableJob):
    """Fails its first run for good (a FAILED job for ``retry``), then runs like Chaos."""

    journal: str
    tag: str

    def execute(self, queue: Any) -> None:
        append(self.journal, f"start {self.tag} {os.getpid()}")
        try:
            os.close(os.open(f"{self.journal}.{self.tag}", os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            append(self.journal, f"end {self.tag} {os.getpid()}")
            return
        raise FailOnceError(f"{self.tag} fails its first run")

    def can_retry(self, attempt: int, error: BaseException) -> bool | None:
        return False if isinstance(error, FailOnceError) else None


class Shade(enum.Enum):
    LIGHT = "light"
    DARK = "dark"


@dataclass
class Place:
    name: str
    since: dt.date | None = None


@dataclass
class Typed(Job):
    """Writes the type and value of each field to the journal: rich types must survive
    the store as they were pushed."""

    journal: str
    when: dt.datetime
    day: dt.date
    span: dt.timedelta
    uid: uuid.UUID
    price: Decimal
    shade: Shade
    blob: bytes
    pair: tuple[int, str]
    tags: set[str]
    place: Place

    def execute(self, queue: Any) -> None:
        for name, value in sorted(vars(self).items()):
            if name != "journal":
                append(self.journal, f"{name} {type(value).__name__} {value!r}")


@dataclass
class Spin(Job):
    """Writes 'start <tag>' and spins in Python until interrupted."""

    journal: str
    tag: str

    def execute(self, queue: Any) -> None:
        append(self.journal, f"start {self.tag}")
        while True:
            pass


@dataclass
class AwaitForever(Job):
    """An async job: writes 'start <tag>' and awaits something that never comes."""

    journal: str
    tag: str

    async def execute(self, queue: Any) -> None:
        append(self.journal, f"start {self.tag}")
        await asyncio.Event().wait()


@dataclass
class AsyncRecord(Job):
    """An async job: sleeps on the event loop, then appends its tag."""

    journal: str
    tag: str
    seconds: float = 0.0

    async def execute(self, queue: Any) -> str:
        await asyncio.sleep(self.seconds)
        append(self.journal, self.tag)
        return self.tag


@dataclass
class AsyncStubborn(Job):
    """An async job that swallows its cancellation, the ttr interrupt, for ``seconds``."""

    journal: str
    seconds: float

    async def execute(self, queue: Any) -> None:
        end = time.monotonic() + self.seconds
        while time.monotonic() < end:
            try:
                await asyncio.sleep(0.05)
            except BaseException as exc:
                append(self.journal, f"swallowed {type(exc).__name__}")
        append(self.journal, "returned")


@dataclass
class Hold(Job):
    """Writes 'start <tag>', waits while the file ``hold`` exists (a minute at most), then
    writes 'end <tag>'."""

    journal: str
    tag: str
    hold: str

    def execute(self, queue: Any) -> str:
        append(self.journal, f"start {self.tag}")
        end = time.monotonic() + 60
        while os.path.exists(self.hold) and time.monotonic() < end:
            time.sleep(0.05)
        append(self.journal, f"end {self.tag}")
        return self.tag


_HELD: list[bytearray] = []


@dataclass
class Hog(Job):
    """Writes '<tag> <pid> <time it ended>' and keeps ``mb`` MB in its process for good
    (a leak)."""

    journal: str
    tag: str
    mb: int = 0
    seconds: float = 0.0

    def execute(self, queue: Any) -> None:
        _HELD.append(bytearray(self.mb * 1_000_000))
        pause(self.seconds)
        append(self.journal, f"{self.tag} {os.getpid()} {time.time():.3f}")


@dataclass
class UniqueRecord(Record):
    """A Record unique by its ``key`` field (``get_unique_key``); none when empty."""

    key: str = ""

    def get_unique_key(self) -> str | None:
        return self.key or None


@dataclass
class WindowRecord(UniqueRecord):
    """A UniqueRecord whose key is held for a minute from its push (class unique_for)."""

    unique_for: ClassVar[float | None] = 60.0


@dataclass
class Cancellable(Job):
    """Writes 'start <tag>', then checks ``self.cancelled()`` every 20 ms for ``seconds``:
    writes 'noticed <tag>' and returns when told, or 'end <tag>' when the time is up."""

    journal: str
    tag: str
    seconds: float = 30.0

    def execute(self, queue: Any) -> str:
        append(self.journal, f"start {self.tag}")
        end = time.monotonic() + self.seconds
        while time.monotonic() < end:
            if self.cancelled():
                append(self.journal, f"noticed {self.tag}")
                return "noticed"
            time.sleep(0.02)
        append(self.journal, f"end {self.tag}")
        return self.tag


@dataclass
class AsyncCancellable(Job):
    """An async job: writes 'start <tag>', then sleeps ``seconds`` on the event loop;
    writes 'cancelled <tag>' if its task is cancelled, 'end <tag>' if not."""

    journal: str
    tag: str
    seconds: float = 30.0

    async def execute(self, queue: Any) -> str:
        append(self.journal, f"start {self.tag}")
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            append(self.journal, f"cancelled {self.tag}")
            raise
        append(self.journal, f"end {self.tag}")
        return self.tag


@dataclass
class Progressing(Job):
    """Reports ``steps`` progress values (i / steps, 'step i'), one every ``every`` seconds,
    writing 'start <tag>' first and 'end <tag>' last; with ``hold``, waits while that file
    exists after the last step (at most a minute)."""

    journal: str
    tag: str
    steps: int = 10
    every: float = 0.0
    hold: str = ""

    def execute(self, queue: Any) -> str:
        append(self.journal, f"start {self.tag}")
        for step in range(1, self.steps + 1):
            self.progress(step / self.steps, f"step {step}")
            if self.every:
                time.sleep(self.every)
        end = time.monotonic() + 60
        while self.hold and os.path.exists(self.hold) and time.monotonic() < end:
            time.sleep(0.02)
        append(self.journal, f"end {self.tag}")
        return self.tag


@dataclass
class AsyncProgressing(Job):
    """An async job that reports 0.25 then 0.75 ('async') and returns."""

    journal: str
    tag: str

    async def execute(self, queue: Any) -> str:
        self.progress(0.25, "async")
        await asyncio.sleep(0.01)
        self.progress(0.75, "async")
        append(self.journal, f"end {self.tag}")
        return self.tag
