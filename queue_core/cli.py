"""The ``queue-core`` command.

``queue-core --app myapp.settings:queue COMMAND`` (or ``QUEUE_APP=myapp.settings:queue``).
The target may be a Queue, a settings dict, a driver URL or a factory returning one.

Exit codes:

- 0: done (``listen`` and ``run`` also when stopped by a signal or a limit);
- 1: the command ran but could not do what was asked (unknown job, job not in the
  required state, back end unreachable, ``clear`` not confirmed);
- 2: bad arguments or settings, reported in one sentence without a traceback;
- 130: interrupted by Ctrl-C outside a worker.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any, Protocol

from . import fleet
from .console import ProgressBar, VerboseReporter, is_terminal
from .dashboard.cli import add_parser as dashboard_parser
from .driver import JobInfo, JobStatus
from .driver_commands import DriverCommand
from .errors import (
    ConfigError,
    DriverError,
    InvalidArgumentError,
    JobNotFoundError,
    JobNotInStateError,
    NotSupportedError,
    QueueError,
)
from .heartbeat import check_period
from .isolation import DEFAULT_MODE, MODES
from .job import lookup, registered_names
from .model import WorkerInfo
from .queue import Queue
from .settings import SCHEMES, queue_from_target

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad arguments or settings: reported in one sentence, exit code 2."""


class CommandFailed(Exception):
    """The command could not do what was asked: reported in one sentence, exit code 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


VERBOSE_AFTER = "verbose_after_command"


def _global_options(parser: argparse.ArgumentParser, after_command: bool) -> None:
    """The options every command takes, before it (``queue-core --app X listen``) or after
    it (``queue-core listen --app X``). After the command a value is set only when given,
    so it replaces the one before; ``-v`` counts add up (``-v listen -v`` is ``-vv``)."""
    group = parser.add_argument_group("global options") if after_command else parser
    unset: Any = argparse.SUPPRESS if after_command else None
    group.add_argument("--app", default=unset,
                       help="module:attr naming the Queue, settings dict, URL or factory "
                            "(default: $QUEUE_APP)")
    group.add_argument("-v", "--verbose", action="count",
                       dest=VERBOSE_AFTER if after_command else "verbose",
                       default=unset if after_command else 0,
                       help="-v: a line per job; -vv: also info logs; -vvv: debug logs")


class _CommandParser(_Parser):
    """A command's parser: it takes the global options too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _global_options(self, after_command=True)


def parse_arguments(parser: argparse.ArgumentParser,
                    argv: Sequence[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    args.verbose += vars(args).pop(VERBOSE_AFTER, 0)
    return args


def _number(minimum: float, integer: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value: float = int(text) if integer else float(text)
        except ValueError:
            kind = "a whole number" if integer else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be >= {minimum:g}")
        return value
    return parse


CORE_COMMANDS = ("listen", "run", "info", "status", "failed", "retry", "remove", "cancel",
                 "clear", "push", "exec", "dashboard", "workers", "scheduler")


def _names_a_core_command(argv: Sequence[str]) -> bool:
    """Whether the command line names one of the core's commands: the first two words
    that are not options (``--app`` takes one) hold the command."""
    words = [word for word in argv if not word.startswith("-")]
    return any(word in CORE_COMMANDS for word in words[:2])


def build_parser(argv: Sequence[str] | None = None, *,
                 prog: str = "queue-core") -> argparse.ArgumentParser:
    """The parser; ``argv`` given and naming a core command, the drivers' commands are
    left out (finding them imports every driver module: ``exec`` runs once per job)."""
    parser = _Parser(prog=prog, description="Run and inspect a queue-core queue.",
                     epilog="Exit codes: 0 done, 1 could not do it, 2 bad arguments or "
                            "settings, 130 interrupted.")
    _global_options(parser, after_command=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND",
                                     parser_class=_CommandParser)

    listen = commands.add_parser("listen", help="process jobs until stopped by a signal")
    listen.add_argument("--timeout", type=_number(0), default=3.0,
                        help="seconds each wait on the back end may block (default 3)")
    listen.add_argument("--workers", type=_number(1, True), default=None,
                        help="run N worker processes under a supervisor that replaces any "
                             "that exits (without it: one worker, this process)")
    listen.add_argument("--heartbeat", type=_number(0), default=None, metavar="SECONDS",
                        help="seconds between the worker's heartbeats, where the driver "
                             "stores them (default: the queue's heartbeat setting, 5 unless "
                             "set; 0: none); with --workers, a worker silent for 3 periods "
                             "is replaced")
    _worker_options(listen)
    listen.add_argument("--metrics-port", type=_number(1, True), default=None, metavar="PORT",
                        help="serve Prometheus metrics at http://HOST:PORT/metrics (needs "
                             "the metrics extra; with --workers, one endpoint for all)")
    listen.add_argument("--metrics-host", default=None, metavar="HOST",
                        help="the address the metrics endpoint listens on (default "
                             "127.0.0.1: this machine only)")
    listen.add_argument("--metrics-files", action="store_true", help=argparse.SUPPRESS)
    listen.add_argument("--scheduler", action="store_true",
                        help="also push the firings of the queue's schedules, from a thread "
                             "(with --workers, of the supervisor); any number of schedulers "
                             "may run at once")
    listen.set_defaults(handler=cmd_listen)

    scheduler = commands.add_parser(
        "scheduler", help="push the firings of the queue's schedules until stopped by a "
                          "signal (any number may run at once)")
    scheduler.set_defaults(handler=cmd_scheduler)

    run = commands.add_parser("run", help="process every job that is ready, then exit")
    _worker_options(run)
    run.set_defaults(handler=cmd_run)

    info = commands.add_parser("info", help="job counts per status and driver capabilities")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(handler=cmd_info)

    workers = commands.add_parser("workers", help="the workers of the queue, from their "
                                  "heartbeats: live ones and those that stopped beating")
    workers.add_argument("--json", action="store_true", help="print JSON")
    workers.set_defaults(handler=cmd_workers)

    status = commands.add_parser("status", help="the status and details of one job, its "
                                 "progress included (where the driver stores it)")
    status.add_argument("id")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=cmd_status)

    failed = commands.add_parser("failed", help="list failed jobs")
    failed.add_argument("--limit", type=_number(1, True), default=20)
    failed.add_argument("--json", action="store_true", help="print JSON")
    failed.set_defaults(handler=cmd_failed)

    retry = commands.add_parser("retry", help="send a failed (or done) job back to waiting")
    retry.add_argument("id", nargs="?")
    retry.add_argument("--all-failed", action="store_true", help="retry every failed job")
    retry.add_argument("--state", choices=["failed", "done"], default="failed",
                       help="the state the job must be in (default failed)")
    retry.add_argument("--reset-attempts", action="store_true",
                       help="count attempts from zero again")
    retry.set_defaults(handler=cmd_retry)

    remove = commands.add_parser("remove", help="delete one job")
    remove.add_argument("id")
    remove.set_defaults(handler=cmd_remove)

    cancel = commands.add_parser(
        "cancel", help="cancel one job: a waiting or delayed one never runs, a running one "
                       "is stopped by its worker; either ends FAILED with JobCancelledError, "
                       "never retried")
    cancel.add_argument("id")
    cancel.set_defaults(handler=cmd_cancel)

    clear = commands.add_parser("clear", help="delete every job of the queue")
    clear.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    clear.set_defaults(handler=cmd_clear)

    if argv is None or not _names_a_core_command(argv):
        _add_driver_commands(commands)

    dashboard_parser(commands).set_defaults(handler=cmd_dashboard)

    push = commands.add_parser("push", help="push a job by its registered name")
    push.add_argument("job_name", metavar="JOB_NAME")
    push.add_argument("--args", default="{}", help="the job's fields as a JSON object")
    push.add_argument("--delay", type=_number(0), default=0.0)
    push.add_argument("--priority", type=_number(float("-inf"), True), default=None)
    push.add_argument("--ttr", type=_number(0), default=None)
    push.set_defaults(handler=cmd_push)

    execute = commands.add_parser("exec", help=argparse.SUPPRESS)
    execute.add_argument("--report-fd", type=_number(0, True), required=True)
    execute.add_argument("--max-memory", type=_number(1), default=None)
    execute.set_defaults(handler=cmd_exec)
    return parser


def driver_commands() -> list[DriverCommand]:
    """The commands of every driver class settings.SCHEMES names, in its order. Driver
    modules import their client libraries lazily, so this stays cheap; a driver module
    that cannot be imported here adds no command."""
    found: list[DriverCommand] = []
    for target in dict.fromkeys(SCHEMES.values()):
        module_name, _, class_name = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            logging.getLogger(__name__).debug("no commands from %s: %s", module_name, exc)
            continue
        found += getattr(getattr(module, class_name, None), "cli_commands", ())
    return found


def _add_driver_commands(commands: Any) -> None:
    groups: dict[str, Any] = {}
    for command in driver_commands():
        if command.group not in groups:
            group = commands.add_parser(command.group, help=command.group_help)
            groups[command.group] = group.add_subparsers(
                dest=f"{command.group}_command", metavar="COMMAND",
                parser_class=_CommandParser, required=True)
        parser = groups[command.group].add_parser(command.name, help=command.help)
        command.add_arguments(parser)
        parser.set_defaults(handler=command.run)


def _worker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=_number(1, True), default=None, metavar="N",
                        help="jobs in flight in this worker: synchronous ones on N threads, "
                             "async ones on its event loop (default: the queue's "
                             "concurrency setting, 1 unless set)")
    parser.add_argument("--async-concurrency", type=_number(1, True), default=None, metavar="N",
                        help="at concurrency 1: async jobs in flight side by side, while "
                             "synchronous ones run one at a time (default: the queue's "
                             "async_concurrency setting, 100 unless set)")
    parser.add_argument("--isolate", nargs="?", const=DEFAULT_MODE, choices=MODES, default=None,
                        help="run each job in a child process killed at its ttr (fork or "
                             f"exec; a bare --isolate means {DEFAULT_MODE} here); one child "
                             "per job in flight, each running job after job")
    parser.add_argument("--max-jobs-per-child", type=_number(1, True), default=None,
                        metavar="N", help="with --isolate: replace a child after N jobs "
                                          "(1: a fresh process for every job)")
    parser.add_argument("--max-memory-per-child", type=_number(1), default=None, metavar="MB",
                        help="with --isolate: replace a child once it uses this much memory "
                             "after a job")
    parser.add_argument("--max-jobs", type=_number(1, True), default=None,
                        help="exit 0 after this many jobs")
    parser.add_argument("--max-memory", type=_number(1), default=None, metavar="MB",
                        help="exit 0 once the worker uses this much memory")
    parser.add_argument("--max-time", type=_number(1), default=None, metavar="SECONDS",
                        help="exit 0 after running this long")


def _configure_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 1 else logging.INFO if verbose == 2 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _app_target(app: str | None) -> str:
    target = app or os.environ.get("QUEUE_APP")
    if not target:
        raise UsageError("no queue given: pass --app module:attr or set QUEUE_APP")
    if ":" not in target:
        raise UsageError(f"--app {target!r} must look like package.module:attribute "
                         "or be a driver URL")
    return target


def load_queue(app: str | None) -> Queue:
    target = _app_target(app)
    # Like celery and rq: the directory the command runs in is importable.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    return queue_from_target(target)


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    try:
        return datetime.datetime.fromtimestamp(timestamp).isoformat(sep=" ", timespec="seconds")
    except (TypeError, ValueError, OverflowError, OSError):
        return f"? ({timestamp!r})"  # as stored: not a time


def _info_dict(info: JobInfo) -> dict[str, Any]:
    return {"id": info.id, "status": info.status.value, "job": info.job_name,
            "attempt": info.attempt, "priority": info.priority, "ttr": info.ttr,
            "pushed_at": info.pushed_at, "started_at": info.started_at,
            "finished_at": info.finished_at, "ready_at": info.ready_at,
            "error": None if info.error is None else info.error.as_dict(),
            "result": info.result if _jsonable(info.result) else repr(info.result),
            "progress": None if info.progress is None else {
                "fraction": info.progress.fraction, "message": info.progress.message,
                "at": info.progress.at}}


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


# -- commands ------------------------------------------------------------------------

def _worker_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"concurrency": args.concurrency, "async_concurrency": args.async_concurrency,
            "max_jobs": args.max_jobs,
            "max_memory": args.max_memory, "max_jobs_per_child": args.max_jobs_per_child,
            "max_memory_per_child": args.max_memory_per_child,
            "max_time": args.max_time, "isolate": args.isolate,
            "app": _app_target(args.app), **(
                {"heartbeat": args.heartbeat} if getattr(args, "heartbeat", None) is not None
                else {})}


class _Stoppable(Protocol):
    stopping: bool


@contextmanager
def _stop_signals_while_exiting(owner: _Stoppable, args: argparse.Namespace) -> Iterator[None]:
    """Keep a stop signal that comes after the worker (or supervisor) has stopped from
    killing the process on its way out: the worker puts back the handlers it found, and
    supervisors and process groups often send SIGTERM more than once, which would turn a
    clean exit 0 into death by signal. Before the owner has been asked to stop, a signal
    gets the handling it had before (SIGINT: KeyboardInterrupt; SIGTERM: death).

    When the command is the program (``main()`` without arguments) the handlers stay until
    the process ends; a caller of ``main(argv)`` gets its own handlers back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    from .worker import STOP_SIGNALS
    previous: dict[int, Any] = {}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if owner.stopping:
            logging.getLogger(__name__).debug("%s while exiting: already stopping",
                                              signal.Signals(signum).name)
            return
        handler = previous[signum]
        if callable(handler):
            handler(signum, frame)
        elif handler != signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    for signum in STOP_SIGNALS:
        previous[signum] = signal.signal(signum, on_signal)
    try:
        yield
    finally:
        if not args.program:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


@contextmanager
def _scheduler_beside(queue: Queue, wanted: bool) -> Iterator[None]:
    """``listen --scheduler``: the queue's schedules pushed from a thread meanwhile."""
    if not wanted:
        yield
        return
    from .scheduler import Scheduler
    scheduler = Scheduler(queue)
    scheduler.start()
    try:
        yield
    finally:
        scheduler.stop()


def cmd_scheduler(queue: Queue, args: argparse.Namespace) -> int:
    from .scheduler import Scheduler
    from .worker import STOP_SIGNALS
    scheduler = Scheduler(queue)
    if threading.current_thread() is not threading.main_thread():
        scheduler.run()
        return 0
    previous = {signum: signal.signal(signum, lambda signum, frame: scheduler.stop(None))
                for signum in STOP_SIGNALS}
    try:
        scheduler.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def cmd_listen(queue: Queue, args: argparse.Namespace) -> int:
    with _scheduler_beside(queue, args.scheduler):
        return _listen(queue, args)


def _listen(queue: Queue, args: argparse.Namespace) -> int:
    if args.metrics_host is not None and args.metrics_port is None:
        raise UsageError("--metrics-host needs --metrics-port")
    if args.metrics_port is not None and args.metrics_port > 65535:
        raise UsageError(f"--metrics-port {args.metrics_port} is not a port (1 to 65535)")
    host = args.metrics_host or "127.0.0.1"
    if args.workers is not None:
        from .supervisor import Supervisor
        command = [sys.executable, "-m", "queue_core", "--app", _app_target(args.app)]
        command += ["-" + "v" * args.verbose] if args.verbose else []
        command += ["listen", "--timeout", str(args.timeout)]
        for option in ("concurrency", "async_concurrency", "isolate", "max_jobs",
                       "max_memory", "max_time", "max_jobs_per_child", "max_memory_per_child",
                       "heartbeat"):
            value = getattr(args, option)
            if value is not None:
                command += [f"--{option.replace('_', '-')}", str(value)]
        period = queue.heartbeat if args.heartbeat is None else check_period(
            args.heartbeat, "--heartbeat")
        store = None
        if period and queue.capabilities.heartbeats:
            store = queue.driver  # kept open: the supervisor reads the workers' beats
        elif period:
            # A warning only when asked for: by default heartbeats are on everywhere.
            logging.getLogger(__name__).log(
                logging.INFO if args.heartbeat is None else logging.WARNING,
                "the %s driver stores no heartbeats: a hung worker is not replaced "
                "(one that exits is)", queue.driver.name)
        if args.metrics_port is None:
            if store is None and not args.scheduler:
                queue.close()
            supervisor = Supervisor(command, int(args.workers), store=store, heartbeat=period)
            with _stop_signals_while_exiting(supervisor, args):
                return supervisor.run()
        # The queue stays open: the endpoint reads the job counts from it per scrape.
        from .metrics_serving import SupervisorMetrics
        with SupervisorMetrics(queue, host, int(args.metrics_port)) as metrics:
            supervisor = Supervisor(command + ["--metrics-files"], int(args.workers),
                                    env=metrics.worker_env(dict(os.environ)),
                                    on_exit=metrics.worker_exited, store=store,
                                    heartbeat=period)
            with _stop_signals_while_exiting(supervisor, args):
                return supervisor.run()
    if args.verbose:
        VerboseReporter(queue)
    server: Any = None
    if args.metrics_files:
        from .metrics_serving import record_to_files
        server = record_to_files(queue)
    elif args.metrics_port is not None:
        from .metrics_serving import serve_worker
        server = serve_worker(queue, host, int(args.metrics_port))
    worker = queue.worker(timeout=args.timeout, **_worker_kwargs(args))
    try:
        with _stop_signals_while_exiting(worker, args):
            return worker.listen()
    finally:
        if server is not None:
            server.close()


def cmd_run(queue: Queue, args: argparse.Namespace) -> int:
    if args.verbose:
        VerboseReporter(queue)
    bar = None
    if is_terminal(sys.stdout) and not args.verbose:
        total = None
        if queue.capabilities.info:
            total = queue.info()[JobStatus.WAITING]
        bar = ProgressBar(queue, total)
    worker = queue.worker(**_worker_kwargs(args))
    with _stop_signals_while_exiting(worker, args):
        count = worker.run()
    if bar is not None:
        bar.finish()
    print(f"processed {count} job{'s' if count != 1 else ''}")
    return EXIT_OK


def cmd_info(queue: Queue, args: argparse.Namespace) -> int:
    counts = queue.info() if queue.capabilities.info else None
    oldest = queue.oldest_waiting_age() if queue.capabilities.waiting_age else None
    caps = queue.capabilities.as_dict()
    workers: list[WorkerInfo] | None = None
    unreadable = ""
    if queue.capabilities.heartbeats:
        try:
            workers = queue.workers()
        except DriverError as exc:  # the counts came through: say so and go on
            unreadable = str(exc)
    now = time.time()
    if args.json:
        print(json.dumps({
            "driver": queue.driver.describe(),
            "counts": None if counts is None else {str(k): v for k, v in counts.items()},
            "oldest_waiting_seconds": oldest,
            "capabilities": caps,
            "workers": None if workers is None else [fleet.as_dict(w, now) for w in workers]},
            indent=2, default=list))
        return EXIT_OK
    print(f"queue: {queue.driver.describe()}")
    if counts is None:
        print("counts: not supported by this driver")
    else:
        for status in JobStatus:
            print(f"  {status.value:<9} {counts.get(status, 'not countable on this back end')}")
    if queue.capabilities.waiting_age:
        print("oldest waiting: " + ("-" if oldest is None else f"{oldest:.1f}s ago"))
    flags = [name for name, value in caps.items() if isinstance(value, bool)]
    print("supports:      " + (", ".join(n for n in flags if caps[n]) or "-"))
    print("not supported: " + (", ".join(n for n in flags if not caps[n]) or "-"))
    if unreadable:
        print(f"workers: cannot be read ({unreadable})")
    elif workers is None:
        print("workers: not listed (this driver stores no heartbeats)")
    else:
        print(f"workers: {fleet.summary(workers, now)}")
        if workers:
            for line in fleet.table(workers[:INFO_WORKERS], now, jobs=False):
                print(f"  {line}")
            if len(workers) > INFO_WORKERS:
                print(f"  ... and {len(workers) - INFO_WORKERS} more ('queue-core workers' "
                      "lists them all)")
    return EXIT_OK


INFO_WORKERS = 10
"""Workers ``info`` lists; ``workers`` lists them all."""


def cmd_workers(queue: Queue, args: argparse.Namespace) -> int:
    workers = queue.workers()
    now = time.time()
    if args.json:
        print(json.dumps([fleet.as_dict(info, now) for info in workers], indent=2))
        return EXIT_OK
    if not workers:
        print(f"no workers are beating on {queue.driver.describe()}")
        return EXIT_OK
    print(f"workers of {queue.driver.describe()}: {fleet.summary(workers, now)}")
    for line in fleet.table(workers, now):
        print(line)
    return EXIT_OK


def cmd_status(queue: Queue, args: argparse.Namespace) -> int:
    status = queue.status(args.id)
    try:
        info: JobInfo | None = queue.get(args.id)
    except JobNotFoundError:
        info = None
    if args.json:
        print(json.dumps(_info_dict(info) if info else {"id": args.id, "status": status.value,
                                                         "stored": False}))
        return EXIT_OK
    if info is None:
        print(f"{status.value} (job {args.id} is not stored: finished and not kept, "
              "or never existed)")
        return EXIT_OK
    print(f"status:    {info.status.value}")
    print(f"job:       {info.job_name or '?'}")
    print(f"id:        {info.id}")
    print(f"attempt:   {info.attempt}")
    print(f"priority:  {info.priority}")
    print(f"ttr:       {info.ttr}")
    print(f"pushed:    {_when(info.pushed_at)}")
    print(f"started:   {_when(info.started_at)}")
    print(f"finished:  {_when(info.finished_at)}")
    if info.ready_at:
        print(f"ready at:  {_when(info.ready_at)}")
    if info.progress is not None:
        shown = f"{info.progress.fraction * 100:.1f}%"
        if info.progress.message:
            shown += f" {info.progress.message}"
        print(f"progress:  {shown} (at {_when(info.progress.at)})")
    if info.error is not None:
        print(f"error:     {info.error}")
    if info.result is not None:
        print(f"result:    {info.result!r}")
    return EXIT_OK


def cmd_failed(queue: Queue, args: argparse.Namespace) -> int:
    listed = queue.failed(limit=int(args.limit))
    if args.json:
        print(json.dumps([_info_dict(info) for info in listed], indent=2))
        return EXIT_OK
    if not listed:
        print("no failed jobs")
        return EXIT_OK
    print(f"{'id':<32}  {'job':<30}  {'attempts':>8}  {'failed at':<19}  error")
    for info in listed:
        error = (str(info.error).splitlines() or ["?"])[0] if info.error else "-"
        print(f"{info.id:<32}  {(info.job_name or '?')[:30]:<30}  {info.attempt:>8}  "
              f"{_when(info.finished_at):<19}  {error[:100]}")
    return EXIT_OK


def cmd_retry(queue: Queue, args: argparse.Namespace) -> int:
    if args.all_failed:
        if args.id or args.state != "failed":
            raise UsageError("retry --all-failed takes no job id and no --state")
        sent, skipped = queue.retry_failed(
            reset_attempts=args.reset_attempts,
            on_skip=lambda job_id, exc: print(f"queue-core: job {job_id} skipped: {exc}",
                                              file=sys.stderr))
        print(f"{sent} failed job{'s' if sent != 1 else ''} sent back to waiting"
              + (f"; {skipped} could not be retried" if skipped else ""))
        return EXIT_FAILED if skipped else EXIT_OK
    if not args.id:
        raise UsageError("retry needs a job id (or --all-failed)")
    try:
        queue.retry(args.id, state=args.state, reset_attempts=args.reset_attempts)
    except JobNotFoundError:
        raise CommandFailed(f"no job {args.id} (code -1)") from None
    except JobNotInStateError as exc:
        raise CommandFailed(f"{exc} (code -3)") from None
    print(f"job {args.id} sent back to waiting")
    return EXIT_OK


def cmd_remove(queue: Queue, args: argparse.Namespace) -> int:
    if not queue.remove(args.id):
        raise CommandFailed(f"no job {args.id}")
    print(f"job {args.id} removed")
    return EXIT_OK


def cmd_cancel(queue: Queue, args: argparse.Namespace) -> int:
    if not queue.cancel(args.id):
        raise CommandFailed(f"no job {args.id} waiting, delayed or running")
    print(f"job {args.id} cancelled")
    return EXIT_OK


def cmd_clear(queue: Queue, args: argparse.Namespace) -> int:
    if not args.yes:
        sys.stdout.write(f"Delete every job in {queue.driver.describe()}? [y/N] ")
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            raise CommandFailed("not confirmed; nothing deleted (use --yes to skip the question)")
    queue.clear()
    print(f"cleared {queue.driver.describe()}")
    return EXIT_OK


def cmd_push(queue: Queue, args: argparse.Namespace) -> int:
    queue.import_job_modules()
    cls = lookup(args.job_name)
    if cls is None:
        known = ", ".join(registered_names()[:20]) or "none"
        raise UsageError(f"no job type named {args.job_name!r} (registered: {known})")
    try:
        fields = json.loads(args.args)
    except ValueError as exc:
        raise UsageError(f"--args is not valid JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise UsageError("--args must be a JSON object of the job's fields")
    try:
        job = cls(**fields)
    except TypeError as exc:
        raise UsageError(f"cannot build {args.job_name} from --args: {exc}") from None
    job_id = queue.push(job, delay=args.delay, priority=args.priority, ttr=args.ttr)
    if job_id is None:
        print("push cancelled by a before_push handler")
        return EXIT_FAILED
    print(job_id)
    return EXIT_OK


def cmd_dashboard(queue: Queue, args: argparse.Namespace) -> int:
    from .dashboard.cli import run
    return run(queue, args, UsageError)


def cmd_exec(queue: Queue, args: argparse.Namespace) -> int:
    """Internal: the life of an isolated worker's child made with exec; jobs come on
    stdin, reports go to the report file descriptor (see job_children.py)."""
    from .job_children import serve
    queue.import_job_modules()
    serve(queue, sys.stdin.fileno(), int(args.report_fd), args.max_memory)
    return EXIT_OK


Handler = Callable[[Queue, argparse.Namespace], int]


def main(argv: Sequence[str] | None = None, *, prog: str = "queue-core") -> int:
    """The command; ``prog`` names it in help and errors (``manage.py queue`` and ``flask
    queue`` run it under their own names)."""
    parser = build_parser(sys.argv[1:] if argv is None else argv, prog=prog)
    try:
        args = parse_arguments(parser, argv)
        args.program = argv is None
        if args.command is None:
            raise UsageError(f"no command given; try '{prog} --help'")
        _configure_logging(args.verbose)
        queue = load_queue(args.app)
    except (UsageError, ConfigError, NotSupportedError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except QueueError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    handler: Handler = args.handler
    try:
        return handler(queue, args)
    except (UsageError, ConfigError, InvalidArgumentError, NotSupportedError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (CommandFailed, QueueError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        # A bug, or a back end answering what nothing expected: one sentence. A worker's
        # traceback goes to its log; an admin command's is shown with -vvv.
        worker = args.command in ("listen", "run")
        logging.getLogger(__name__).log(logging.ERROR if worker else logging.DEBUG,
                                        "%s failed", args.command, exc_info=True)
        print(f"{prog}: error: {args.command} failed: {type(exc).__name__}: {exc}"
              + ("" if worker else " (-vvv shows the traceback)"), file=sys.stderr)
        return EXIT_FAILED
    finally:
        try:
            queue.close()
        except Exception as exc:
            print(f"queue-core: warning: closing the queue: {exc}", file=sys.stderr)
