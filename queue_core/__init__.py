"""queue-core: a job queue in the Yii2-queue tradition.

Only the standard library is imported here; each driver imports its client library
when it is used.
"""

from .consumer import Consumer
from .driver import Capabilities, Driver, ErrorInfo, JobInfo, JobStatus, Message
from .errors import (
    ConfigError,
    DamagedJobError,
    DriverError,
    InvalidArgumentError,
    JobCancelledError,
    JobNotFoundError,
    JobNotInStateError,
    JobTimeoutError,
    NotSupportedError,
    QueueError,
    SerializationError,
    WorkerLostError,
)
from .events import ExecEvent, PushEvent, RetryEvent, WorkerEvent
from .job import Job, RetryableJob
from .model import Progress
from .queue import Queue
from .retry import Backoff
from .serializers import JsonSerializer, PickleSerializer, Serializer
from .settings import create_queue
from .store import Store
from .worker import Worker

__all__ = [
    "Backoff", "Capabilities", "ConfigError", "Consumer", "DamagedJobError", "Driver",
    "DriverError",
    "ErrorInfo", "ExecEvent", "InvalidArgumentError", "Job", "JobCancelledError", "JobInfo",
    "JobNotFoundError",
    "JobNotInStateError", "JobStatus", "JobTimeoutError", "JsonSerializer", "Message",
    "NotSupportedError", "PickleSerializer", "Progress", "PushEvent", "Queue", "QueueError",
    "RetryEvent", "RetryableJob", "SerializationError", "Serializer", "Store", "Worker",
    "WorkerEvent", "WorkerLostError", "create_queue",
]

__version__ = "0.1.0"
