"""``listen --metrics-port``: serving ``/metrics``, from one worker or from a supervisor.

One worker (no ``--workers``) records in prometheus_client's default registry and serves
it. With ``--workers N`` the workers are separate processes: the supervisor makes a fresh
directory, hands it to them (``QUEUE_CORE_METRICS_DIR``), each writes its tallies there
(metrics_files.py), and the supervisor serves their sum, so one scrape shows every
worker, including those that have exited; the directory goes when the supervisor ends.
Both add the job counts per status, read from the back end per scrape.

The address defaults to 127.0.0.1: job names and counts are nobody else's business, and
the endpoint has no authentication. Listening elsewhere takes ``--metrics-host``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .metrics import StatusCollector, Tallies, TallyCollector, client, instrument
from .metrics_files import DIR_ENV, TallyWriter, read_all

if TYPE_CHECKING:
    from .queue import Queue

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"


class MetricsServer:
    """An HTTP server of ``/metrics`` in a daemon thread; ``close`` stops it."""

    def __init__(self, registry: Any, host: str, port: int) -> None:
        try:
            self._server, self._thread = client().start_http_server(port, addr=host,
                                                                    registry=registry)
        except OSError as exc:
            from .errors import ConfigError
            raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc}",
                              key="metrics-port") from None
        logger.info("metrics at http://%s:%d/metrics", host, port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class WorkerMetrics:
    """A lone worker: ``queue`` recorded in the default registry and served;
    ``close`` undoes both."""

    def __init__(self, queue: Queue, host: str, port: int) -> None:
        self._registry = client().REGISTRY
        self._server = MetricsServer(self._registry, host, port)
        self._metrics = instrument(queue)
        self._status = StatusCollector(queue)
        self._registry.register(self._status)

    def close(self) -> None:
        self._metrics.detach()
        self._registry.unregister(self._status)
        self._server.close()


def serve_worker(queue: Queue, host: str, port: int) -> WorkerMetrics:
    """A lone worker: record ``queue`` in the default registry and serve it."""
    return WorkerMetrics(queue, host, port)


def record_to_files(queue: Queue) -> TallyWriter:
    """A supervised worker: record ``queue`` and write the tallies to the directory its
    supervisor named; ``close`` the writer when the worker stops."""
    directory = os.environ.get(DIR_ENV)
    if not directory:
        from .errors import ConfigError
        raise ConfigError(f"--metrics-files needs {DIR_ENV} (set by the supervisor)",
                          key="metrics-files")
    into = Tallies()
    instrument(queue, into=into)
    return TallyWriter(into, directory)


class SupervisorMetrics:
    """The supervisor's side: the files' directory and the server of their sum."""

    def __init__(self, queue: Queue, host: str, port: int) -> None:
        prom = client()
        self.directory = tempfile.mkdtemp(prefix="queue-core-metrics-")
        try:
            registry = prom.CollectorRegistry()
            registry.register(TallyCollector(lambda: read_all(self.directory)))
            registry.register(StatusCollector(queue))
            self._server = MetricsServer(registry, host, port)
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise

    def worker_env(self, env: dict[str, str]) -> dict[str, str]:
        return {**env, DIR_ENV: self.directory}

    def worker_exited(self, pid: int) -> None:
        """Its file stays: the counts of a worker that exited stay in the sum."""

    def close(self) -> None:
        try:
            self._server.close()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> SupervisorMetrics:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()
