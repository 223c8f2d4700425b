"""The consumer machinery the core owns (consuming.Consumption), on a scripted consumer."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest
from queue_core.drivers.memory import MemoryDriver

from queue_core import DriverError, ErrorInfo, Message
from queue_core.consumer import Consumer, Settlement, Verdict
from queue_core.consuming import AHEAD_JOB_MAX, QUICK_JOB, Consumption


class Flaky(Exception):
    """Stands for a client library's connection error."""


class Scripted(Consumer):
    prefetch = 8

    def __init__(self, folds: bool = False) -> None:
        self.folds_settlements = folds  # type: ignore[misc]
        self.ready = [Message(str(n), b"{}", 1, 60.0) for n in range(1, 40)]
        self.calls: list[tuple[Any, ...]] = []
        self.fail_next: BaseException | None = None
        self.taken_by_others: set[str] = set()

    def _maybe_fail(self) -> None:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error

    def fetch(self, max_n: int, timeout: float,
              settle: Sequence[Settlement] = ()) -> list[Message]:
        self._maybe_fail()
        self.calls.append(("fetch", max_n, [s.message.id for s in settle]))
        taken, self.ready = self.ready[:max_n], self.ready[max_n:]
        return taken

    def begin(self, message: Message, settle: Sequence[Settlement] = ()) -> bool:
        self._maybe_fail()
        self.calls.append(("begin", message.id, [s.message.id for s in settle]))
        return message.id not in self.taken_by_others

    def ack(self, message: Message, *, result: bytes | None = None, keep: bool = False) -> None:
        self.calls.append(("ack", message.id))

    def release(self, message: Message, *, delay: float, error: ErrorInfo | None) -> None:
        self.calls.append(("release", message.id, delay))

    def fail(self, message: Message, *, error: ErrorInfo, keep: bool = True) -> None:
        self.calls.append(("fail", message.id))

    def settle(self, settlements: Sequence[Settlement]) -> None:
        self._maybe_fail()
        super().settle(settlements)

    def give_back(self, messages: Sequence[Message]) -> None:
        self.calls.append(("give_back", [m.id for m in messages]))

    def close(self) -> None:
        self.calls.append(("close",))


class Store(MemoryDriver):
    transient_errors = (Flaky,)


def consumption(consumer: Scripted) -> Consumption:
    return Consumption(Store(), consumer)


def test_quick_jobs_are_fetched_several_at_a_time_and_slow_ones_one_by_one() -> None:
    consumer = Scripted()
    c = consumption(consumer)
    for _ in range(10):
        c.ack(c.next(0))
    sizes = [call[1] for call in consumer.calls if call[0] == "fetch"]
    # A new worker assumes slow jobs until it has timed some.
    assert sizes[0] == 1 and max(sizes) == Scripted.prefetch
    consumer.calls.clear()
    for _ in range(Scripted.prefetch + 3):  # empties what was fetched ahead, then more
        message = c.next(0)
        time.sleep(QUICK_JOB * 5)
        c.ack(message)
    sizes = [call[1] for call in consumer.calls if call[0] == "fetch"]
    assert sizes[-2:] == [1, 1]


def test_every_message_is_begun_before_it_is_handed_out_and_owned_by_its_consumption() -> None:
    consumer = Scripted()
    c = consumption(consumer)
    message = c.next(0)
    assert message is not None and message.owner is c
    assert consumer.calls[-1] == ("begin", message.id, [])


def test_several_free_slots_are_filled_by_one_fetch_and_begun_together() -> None:
    consumer = Scripted(folds=True)
    c = consumption(consumer)
    first = c.next(0)
    c.ack(first)
    begun = c.next_many(0, room=5)
    assert len(begun) == 5 and all(m.owner is c and m.began for m in begun)
    fetches = [call for call in consumer.calls if call[0] == "fetch"]
    assert fetches[-1][1] >= 5 and fetches[-1][2] == [first.id]  # one fetch, with the ack
    starts = [call for call in consumer.calls[consumer.calls.index(fetches[-1]):]
              if call[0] == "begin"]
    # Scripted has no begin_many of its own: the default begins them in order.
    assert [call[1] for call in starts] == [m.id for m in begun]
    c.ack(begun[0])
    c.next_many(0, room=2)
    starts = [call for call in consumer.calls if call[0] == "begin"]
    assert starts[-2][2] == [begun[0].id] and starts[-1][2] == []  # the ack rides once


def test_a_job_another_worker_took_is_skipped_among_those_begun_together(
        caplog: pytest.LogCaptureFixture) -> None:
    consumer = Scripted()
    c = consumption(consumer)
    c.ack(c.next(0))
    consumer.taken_by_others.add("3")
    begun = c.next_many(0, room=3)
    assert [m.id for m in begun] == ["2", "4"]
    assert "job 3 was fetched ahead and another worker took it" in caplog.text


def test_with_every_slot_busy_short_jobs_are_fetched_ahead_and_begun_without_a_fetch() -> None:
    consumer = Scripted()
    c = consumption(consumer)
    c.fetch_ahead(4)
    assert consumer.calls == []  # no job timed yet: it may be a long one
    c.ack(c.next(0))
    c.fetch_ahead(4)
    assert consumer.calls[-1] == ("fetch", 4, [])
    c.fetch_ahead(4)
    assert consumer.calls[-1] == ("fetch", 4, [])  # jobs at hand: no second fetch
    assert len([call for call in consumer.calls if call[0] == "fetch"]) == 2
    begun = c.next_many(0, room=4)
    assert [m.id for m in begun] == ["2", "3", "4", "5"]
    assert [call[0] for call in consumer.calls[-4:]] == ["begin"] * 4


def test_slow_jobs_are_not_fetched_ahead() -> None:
    consumer = Scripted()
    c = consumption(consumer)
    message = c.next(0)
    message.began -= AHEAD_JOB_MAX * 2  # it took longer than jobs fetched ahead may wait
    c.ack(message)
    calls = len(consumer.calls)
    c.fetch_ahead(4)
    assert len(consumer.calls) == calls


def test_without_folding_each_settlement_is_carried_out_at_once() -> None:
    consumer = Scripted(folds=False)
    c = consumption(consumer)
    first = c.next(0)
    c.release(first, delay=2.0, error=None)
    assert consumer.calls[-1] == ("release", first.id, 2.0)


def test_folded_settlements_ride_on_the_next_call_and_the_rest_on_close() -> None:
    consumer = Scripted(folds=True)
    c = consumption(consumer)
    first = c.next(0)
    c.ack(first)
    assert consumer.calls[-1][0] == "begin"  # nothing sent for the ack yet
    second = c.next(0)
    carried = [call for call in consumer.calls if call[0] in ("fetch", "begin") and call[-1]]
    assert [call[-1] for call in carried] == [[first.id]]  # on the very next call
    assert consumer.calls[-1][:2] == ("begin", second.id)
    c.fail(second, error=ErrorInfo("E", "m"))
    c.close()
    assert ("fail", second.id) in consumer.calls
    give_back = [call for call in consumer.calls if call[0] == "give_back"]
    assert give_back and first.id not in give_back[0][1] and second.id not in give_back[0][1]
    assert consumer.calls[-1] == ("close",)


def test_a_failed_call_keeps_its_settlements_for_the_next_one() -> None:
    consumer = Scripted(folds=True)
    c = consumption(consumer)
    first = c.next(0)
    c.ack(first)
    consumer.fail_next = Flaky("connection reset")
    with pytest.raises(DriverError, match="connection reset"):
        c.next(0)
    second = c.next(0)
    begins = [call for call in consumer.calls if call[0] in ("begin", "fetch")]
    assert first.id in begins[-1][2] or first.id in begins[-2][2]
    assert second is not None


def test_a_client_error_becomes_a_driver_error_naming_the_store() -> None:
    consumer = Scripted()
    c = consumption(consumer)
    consumer.fail_next = Flaky("refused")
    with pytest.raises(DriverError, match=r"memory://.*Flaky: refused"):
        c.next(0)


def test_other_errors_are_not_disguised() -> None:
    consumer = Scripted()
    c = consumption(consumer)
    consumer.fail_next = KeyError("a bug")
    with pytest.raises(KeyError):
        c.next(0)


def test_close_gives_back_what_was_fetched_and_never_begun() -> None:
    consumer = Scripted()
    c = consumption(consumer)
    c.ack(c.next(0))  # one at a time until a job is timed; quick: a batch next
    c.ack(c.next(0))
    c.close()
    (give_back,) = [call for call in consumer.calls if call[0] == "give_back"]
    assert give_back[1] == [str(n) for n in range(3, Scripted.prefetch + 2)]
    assert consumer.calls[-1] == ("close",)


def test_verdicts_reach_the_consumer_with_their_values() -> None:
    consumer = Scripted()
    message = Message("9", b"{}", 1, 60.0)
    consumer.settle([Settlement(Verdict.ACK, message, result=b"r", keep=True),
                     Settlement(Verdict.RELEASE, message, delay=3.0),
                     Settlement(Verdict.FAIL, message, error=ErrorInfo("E", "m"))])
    assert consumer.calls == [("ack", "9"), ("release", "9", 3.0), ("fail", "9")]


def test_a_consumer_that_cannot_settle_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match="must define settle, or ack, release and fail"):
        class OnlyAck(Consumer):
            def fetch(self, max_n: int, timeout: float,
                      settle: Sequence[Settlement] = ()) -> list[Message]:
                return []

            def ack(self, message: Message, *, result: bytes | None = None,
                    keep: bool = False) -> None:
                pass


def test_a_consumer_may_settle_in_batches_only() -> None:
    class Batches(Consumer):
        def __init__(self) -> None:
            self.batches: list[list[Verdict]] = []

        def fetch(self, max_n: int, timeout: float,
                  settle: Sequence[Settlement] = ()) -> list[Message]:
            return []

        def settle(self, settlements: Sequence[Settlement]) -> None:
            self.batches.append([s.verdict for s in settlements])

    consumer = Batches()
    message = Message("1", b"{}", 1, 60.0)
    consumer.ack(message)
    consumer.release(message, delay=1.0, error=None)
    consumer.fail(message, error=ErrorInfo("E", "m"))
    assert consumer.batches == [[Verdict.ACK], [Verdict.RELEASE], [Verdict.FAIL]]


def test_a_job_another_worker_took_before_it_began_is_skipped(
        caplog: pytest.LogCaptureFixture) -> None:
    consumer = Scripted()
    consumer.taken_by_others = {"1"}
    c = consumption(consumer)
    message = c.next(0)
    assert message is not None and message.id == "2"
    assert "job 1 was fetched ahead and another worker took it" in caplog.text
