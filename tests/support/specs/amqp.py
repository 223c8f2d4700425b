"""AMQP: the shared RabbitMQ on 127.0.0.1:5672 (guest/guest, or $QUEUE_TEST_AMQP_URL),
a fresh channel (queue) per test, on classic queues (``amqp``) and on quorum queues
(``amqp-quorum``). Each test's queues are deleted when it ends: a broker that keeps them
all runs out of file handles and stops taking connections (RabbitMQ 3.10, 1,024 files)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from tests.support.drivers import LEASE_GRACE, DriverSpec

ORDER = 60
URL = os.environ.get("QUEUE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
logger = logging.getLogger(__name__)


def available() -> str | None:
    try:
        import pika  # noqa: F401
    except ImportError:
        return "pika is not installed (pip install -e '.[amqp]')"
    from queue_core.drivers.amqp.connection import Wire, WireError
    try:
        import pika
        Wire(pika.URLParameters(URL), heartbeat=0, connect_timeout=2, rpc_timeout=5,
             name="queue-core test probe").open().close()
    except WireError as exc:
        return f"no RabbitMQ at {URL}: {exc}"
    return None


def settings(tmp: Path, channel: str) -> dict[str, Any]:
    return {"driver": {"url": URL, "lease_grace": LEASE_GRACE}, "channel": channel}


def quorum_settings(tmp: Path, channel: str) -> dict[str, Any]:
    return {"driver": {"url": URL, "lease_grace": LEASE_GRACE, "queue_type": "quorum"},
            "channel": channel}


def delete_queues(settings: dict[str, Any]) -> None:
    from queue_core.drivers.amqp import AmqpDriver

    from queue_core import QueueError
    driver = AmqpDriver(URL, channel=settings["channel"],
                        queue_type=settings["driver"].get("queue_type", "classic"))
    try:
        driver.delete_queues()
    except QueueError as exc:  # the broker is down: the test has said so already
        logger.warning("could not delete the queues of %s: %s", settings["channel"], exc)
    finally:
        driver.close()


SPECS = [DriverSpec("amqp", "queue_core.drivers.amqp:AmqpDriver", settings, available,
                    delete_queues, copies_then_acks=True),
         DriverSpec("amqp-quorum", "queue_core.drivers.amqp:AmqpQuorumDriver", quorum_settings,
                    available, delete_queues, copies_then_acks=True)]
