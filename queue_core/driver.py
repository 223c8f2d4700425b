"""The driver contract in one import: the Store (store.py), the Consumer each worker
opens (consumer.py) and the values they exchange with the core (model.py).

``Driver`` is the name the first release gave the base class of every driver; it is the
Store now, kept so that ``isinstance(queue.driver, Driver)`` and imports keep working.
"""

from __future__ import annotations

from .consumer import Consumer, Settlement, Verdict
from .model import (
    DEFAULT_PRIORITY,
    KEEP_ALL,
    LOGGED_MESSAGE,
    UNREADABLE,
    Capabilities,
    ErrorInfo,
    JobInfo,
    JobStatus,
    Message,
    PushRequest,
    Retention,
    RunningJob,
    WorkerInfo,
    check_channel,
)
from .store import Store

Driver = Store

__all__ = ["DEFAULT_PRIORITY", "KEEP_ALL", "LOGGED_MESSAGE", "UNREADABLE", "Capabilities",
           "Consumer", "Driver", "ErrorInfo", "JobInfo", "JobStatus", "Message", "PushRequest",
           "Retention", "RunningJob", "Settlement", "Store", "Verdict", "WorkerInfo",
           "check_channel"]
