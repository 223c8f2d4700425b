"""The ``queue-core`` command.

``queue-core --app myapp.settings:queue COMMAND`` (or ``QUEUE_APP=myapp.settings:queue``).
The target may be a Queue, a settings dict, a driver URL or a factory returning one.

Exit codes: 0 success; 1 the command ran but failed (back end unreachable, job not
found); 2 bad arguments or settings (one sentence on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence

from .driver import JobStatus
from .errors import ConfigError, InvalidArgumentError, NotSupportedError, QueueError
from .queue import Queue
from .settings import queue_from_target

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad arguments or settings: reported in one sentence, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="queue-core", description="Run and inspect a queue-core queue.")
    parser.add_argument("--app", help="module:attr naming the Queue, settings dict, URL or "
                        "factory (default: $QUEUE_APP)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log more (-v: each job, -vv: debug)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    listen = commands.add_parser("listen", help="process jobs until stopped by a signal")
    listen.add_argument("--timeout", type=_non_negative, default=3.0,
                        help="seconds each wait on the back end may block (default 3)")
    listen.add_argument("--max-jobs", type=_positive_int, default=None,
                        help="exit 0 after this many jobs")
    listen.set_defaults(handler=cmd_listen)

    run = commands.add_parser("run", help="process every job that is ready, then exit")
    run.add_argument("--max-jobs", type=_positive_int, default=None)
    run.set_defaults(handler=cmd_run)

    info = commands.add_parser("info", help="job counts per status and driver capabilities")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(handler=cmd_info)
    return parser


def _configure_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def load_queue(app: str | None) -> Queue:
    target = app or os.environ.get("QUEUE_APP")
    if not target:
        raise UsageError("no queue given: pass --app module:attr or set QUEUE_APP")
    if ":" not in target:
        raise UsageError(f"--app {target!r} must look like package.module:attribute")
    # Like celery and rq: the directory the command runs in is importable.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    return queue_from_target(target)


def cmd_listen(queue: Queue, args: argparse.Namespace) -> int:
    return queue.listen(timeout=args.timeout, max_jobs=args.max_jobs)


def cmd_run(queue: Queue, args: argparse.Namespace) -> int:
    count = queue.run(max_jobs=args.max_jobs)
    print(f"processed {count} job{'s' if count != 1 else ''}")
    return EXIT_OK


def cmd_info(queue: Queue, args: argparse.Namespace) -> int:
    counts = queue.info() if queue.capabilities.info else None
    caps = queue.capabilities.as_dict()
    if args.json:
        print(json.dumps({
            "driver": queue.driver.describe(),
            "counts": None if counts is None else {str(k): v for k, v in counts.items()},
            "capabilities": caps}, indent=2, default=list))
        return EXIT_OK
    print(f"queue: {queue.driver.describe()}")
    if counts is None:
        print("counts: not supported by this driver")
    else:
        for status in JobStatus:
            print(f"  {status.value:<9} {counts[status]}")
    flags = [name for name, value in caps.items() if isinstance(value, bool)]
    print("supports:      " + (", ".join(n for n in flags if caps[n]) or "-"))
    print("not supported: " + (", ".join(n for n in flags if not caps[n]) or "-"))
    return EXIT_OK


Handler = Callable[[Queue, argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError("no command given; try 'queue-core --help'")
        _configure_logging(args.verbose)
        queue = load_queue(args.app)
    except UsageError as exc:
        print(f"queue-core: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ConfigError, NotSupportedError) as exc:
        print(f"queue-core: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except QueueError as exc:
        print(f"queue-core: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    handler: Handler = args.handler
    try:
        return handler(queue, args)
    except (ConfigError, InvalidArgumentError, NotSupportedError) as exc:
        print(f"queue-core: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except QueueError as exc:
        print(f"queue-core: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    finally:
        queue.close()

