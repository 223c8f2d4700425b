"""``listen --metrics-port``: serving ``/metrics``, from one worker or from a supervisor.

One worker (no ``--workers``) records in prometheus_client's default registry and serves
it. With ``--workers N`` the workers are separate processes: the supervisor makes a fresh
directory, hands it to them as ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client then keeps
every value in a file there), and serves what a MultiProcessCollector sums over the
files, so one scrape shows every worker, including those that have exited. When a worker
exits, ``mark_process_dead`` drops its live-gauge files; the directory goes when the
supervisor ends. Both add the job counts per status, read from the back end per scrape.

The address defaults to 127.0.0.1: job names and counts are nobody else's business, and
the endpoint has no authentication. Listening elsewhere takes ``--metrics-host``.
"""

from __future__ import annotations

import importlib
import logging
import shutil
import tempfile
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .metrics import StatusCollector, client, instrument

if TYPE_CHECKING:
    from .queue import Queue

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


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


def record_to_files(queue: Queue) -> None:
    """A supervised worker: record ``queue``; prometheus_client writes the values to the
    files of PROMETHEUS_MULTIPROC_DIR, which the supervisor serves."""
    instrument(queue)


class SupervisorMetrics:
    """The supervisor's side: the files' directory, the server, and dead workers' files."""

    def __init__(self, queue: Queue, host: str, port: int) -> None:
        prom = client()
        # Through importlib: the module is untyped, and only its two calls are used.
        multiprocess: Any = importlib.import_module("prometheus_client.multiprocess")
        self._multiprocess = multiprocess
        self.directory = tempfile.mkdtemp(prefix="queue-core-metrics-")
        try:
            registry = prom.CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.directory)
            registry.register(StatusCollector(queue))
            self._server = MetricsServer(registry, host, port)
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise

    def worker_env(self, env: dict[str, str]) -> dict[str, str]:
        return {**env, MULTIPROC_ENV: self.directory}

    def worker_exited(self, pid: int) -> None:
        try:
            self._multiprocess.mark_process_dead(pid, self.directory)
        except OSError as exc:
            logger.warning("metrics: cannot drop the files of worker %d: %s", pid, exc)

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
