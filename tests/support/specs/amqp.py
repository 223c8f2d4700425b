"""AMQP: the shared RabbitMQ on 127.0.0.1:5672 (guest/guest, or $QUEUE_TEST_AMQP_URL),
a fresh channel (queue) per test, on classic queues (``amqp``) and on quorum queues
(``amqp-quorum``). The queues a test run made are deleted when it ends,
so runs do not pile up queues on the broker."""

from __future__ import annotations

import atexit
import os
from pathlib import Path
from typing import Any

from tests.support.drivers import LEASE_GRACE, DriverSpec

ORDER = 60
URL = os.environ.get("QUEUE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
_channels: set[str] = set()
_quorum_channels: set[str] = set()


def available() -> str | None:
    try:
        import pika  # noqa: F401
    except ImportError:
        return "pika is not installed (pip install -e '.[amqp]')"
    from drivers.amqp_wire import Wire, WireError
    try:
        import pika
        Wire(pika.URLParameters(URL), heartbeat=0, connect_timeout=2, rpc_timeout=5,
             name="queue-core test probe").open().close()
    except WireError as exc:
        return f"no RabbitMQ at {URL}: {exc}"
    return None


def settings(tmp: Path, channel: str) -> dict[str, Any]:
    _channels.add(channel)
    return {"driver": {"url": URL, "lease_grace": LEASE_GRACE}, "channel": channel}


def quorum_settings(tmp: Path, channel: str) -> dict[str, Any]:
    _quorum_channels.add(channel)
    return {"driver": {"url": URL, "lease_grace": LEASE_GRACE, "queue_type": "quorum"},
            "channel": channel}


@atexit.register
def _delete_queues() -> None:
    from queue_core import QueueError
    for channel, queue_type in [*((c, "classic") for c in sorted(_channels)),
                                *((c, "quorum") for c in sorted(_quorum_channels))]:
        from drivers.amqp import AmqpDriver
        try:
            driver = AmqpDriver(URL, channel=channel, queue_type=queue_type)
            driver.delete_queues()
            driver.close()
        except QueueError:
            return


SPECS = [DriverSpec("amqp", "drivers.amqp:AmqpDriver", settings, available),
         DriverSpec("amqp-quorum", "drivers.amqp:AmqpQuorumDriver", quorum_settings, available)]
