"""AMQP retention specifics: failed copies that expire after max_age (and retried ones
that do not), the bound RabbitMQ puts on an expiration, and a count trim that never takes
more than the excess, even when another worker trims at the same moment."""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest
from queue_core.drivers.amqp import connection, retention
from queue_core.drivers.amqp.connection import Delivery, QueueCounts

from queue_core import JobStatus, NotSupportedError, Queue, create_queue
from tests.support.jobs import Boom, FailOnce
from tests.support.specs.amqp import URL, available, delete_queues

pytestmark = pytest.mark.skipif(bool(available()), reason=str(available()))

QUEUE_TYPES = ["classic", "quorum"]


@pytest.fixture
def make() -> Iterator[Any]:
    made: list[tuple[Queue, dict[str, Any]]] = []

    def build(queue_type: str = "classic", **extra: Any) -> Queue:
        settings = {"driver": {"url": URL, "queue_type": queue_type},
                    "channel": f"t{uuid.uuid4().hex[:12]}",
                    "imports": ["tests.support.jobs"], **extra}
        queue = create_queue(settings)
        made.append((queue, settings))
        return queue
    yield build
    for queue, settings in made:
        queue.close()
        delete_queues(settings)


def _run_all(queue: Queue) -> None:
    while queue.run():
        pass


def _expirations(queue: Queue) -> list[str | None]:
    """The expiration property of each message in the failed queue, read with pika (an
    independent client) and handed back."""
    import pika
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    try:
        channel = connection.channel()
        found = []
        while True:
            method, properties, _ = channel.basic_get(f"{queue.driver.channel}.failed")
            if method is None:
                break
            found.append(properties.expiration)
        channel.basic_nack(0, multiple=True, requeue=True)
        return found
    finally:
        connection.close()


@pytest.mark.parametrize("queue_type", QUEUE_TYPES)
def test_failed_copies_expire_after_max_age_and_retried_ones_do_not(
        make: Any, queue_type: str, journal: str) -> None:
    queue = make(queue_type, keep_failed={"max_age": 1.2})
    job_id = queue.push(FailOnce(journal, "again"))
    queue.push(Boom(1))
    _run_all(queue)
    assert _expirations(queue) == ["1200", "1200"]
    queue.retry(job_id)
    time.sleep(1.5)
    # The broker dropped the failed copy left there; the retried one waited longer than
    # max_age in the job queue and still runs.
    assert queue.info()[JobStatus.FAILED] == 0
    assert queue.run() == 1
    assert queue.info()[JobStatus.FAILED] == 0
    plain = make(queue_type)
    plain.push(Boom(2))
    _run_all(plain)
    assert _expirations(plain) == [None]  # no limit, no expiration


def test_a_max_age_beyond_rabbitmqs_longest_expiration_is_refused(make: Any) -> None:
    longest = retention.MAX_EXPIRATION_MS / 1000
    queue = make(keep_failed={"max_age": longest})
    assert queue.driver.retention_failed.max_age == longest
    assert retention.expiration(longest) == str(retention.MAX_EXPIRATION_MS)
    with pytest.raises(NotSupportedError, match=r"the amqp driver does not support "
                       r"keep_failed.max_age 5\.184e\+06 s: it keeps jobs for at most"):
        make(keep_failed={"max_age": 60 * 86400})


class _Racing:
    """A wire whose failed queue another worker trims while this one does: the depth it
    declares is stale by the time the gets come back."""

    def __init__(self, declared: int, lefts: list[int]) -> None:
        self.declared = declared
        self.lefts = deque(lefts)
        self.acked: list[int] = []
        self.requeued: list[int] = []

    def declare(self, queue: str, arguments: dict[str, Any], *,
                passive: bool = False) -> QueueCounts:
        assert passive and not arguments  # never a redeclare with other arguments
        return QueueCounts(self.declared, 0)

    def get(self, queue: str) -> Delivery | None:
        if not self.lefts:
            return None
        delivery = Delivery(len(self.acked) + len(self.requeued) + 1, False, queue)
        delivery.left = self.lefts.popleft()
        return delivery

    def ack(self, tag: int, multiple: bool = False) -> None:
        self.acked.append(tag)

    def requeue(self, tag: int, multiple: bool = False) -> None:
        self.requeued.append(tag)


def test_a_count_trim_takes_the_excess_and_never_more() -> None:
    alone = _Racing(8, [6, 5, 4, 3])
    assert retention.trim(alone, "q.failed", 5) == 2  # type: ignore[arg-type]
    assert (alone.acked, alone.requeued) == ([1, 2], [])
    # Another worker took three meanwhile: after one, the next would go below the limit
    # and goes back to the queue.
    racing = _Racing(8, [6, 2, 1])
    assert retention.trim(racing, "q.failed", 5) == 1  # type: ignore[arg-type]
    assert (racing.acked, racing.requeued) == ([1], [2])
    assert retention.trim(_Racing(5, [4]), "q.failed", 5) == 0  # type: ignore[arg-type]


def test_a_get_ok_tells_the_messages_left(make: Any) -> None:
    queue = make()
    queue.push_many([Boom(n) for n in range(3)])
    import pika
    wire = connection.Wire(pika.URLParameters(URL), heartbeat=0, connect_timeout=5,
                           rpc_timeout=10, name="test inspector").open()
    try:
        got = [wire.get(queue.driver.channel) for _ in range(3)]
        assert [delivery.left for delivery in got if delivery is not None] == [2, 1, 0]
    finally:
        wire.close()


@pytest.mark.parametrize("queue_type", QUEUE_TYPES)
def test_a_worker_reads_the_failed_queues_depth_only_every_tenth_of_max_count(
        make: Any, queue_type: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The failure path pays for retention with a declare every tenth of max_count
    failures (or a second after the last), not with a round trip per failure."""
    queue = make(queue_type, keep_failed=1000)
    queue.push_many([Boom(n) for n in range(300)])
    trims = 0
    real = retention.trim

    def counting(*args: Any) -> int:
        nonlocal trims
        trims += 1
        return real(*args)
    monkeypatch.setattr(retention, "trim", counting)
    began = time.monotonic()
    _run_all(queue)
    took = time.monotonic() - began
    assert queue.info()[JobStatus.FAILED] == 300
    assert 1 <= trims <= 3 + int(took) + 2
