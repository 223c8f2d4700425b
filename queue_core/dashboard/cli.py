"""The ``queue-core dashboard`` command."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..queue import Queue

logger = logging.getLogger(__name__)


def add_parser(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "dashboard", help="serve the web dashboard (127.0.0.1 unless --host)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1; any other address needs "
                             "--token or --basic-auth)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument("--read-only", action="store_true",
                        help="show, but offer and accept no action")
    parser.add_argument("--token", default=None,
                        help="require this token (default: $QUEUE_CORE_DASHBOARD_TOKEN; the "
                             "environment keeps it out of the process list)")
    parser.add_argument("--basic-auth", default=None, metavar="USER:PASSWORD",
                        help="require HTTP basic auth (default: "
                             "$QUEUE_CORE_DASHBOARD_BASIC_AUTH)")
    return parser


def run(queue: Queue, args: argparse.Namespace, usage_error: type[Exception]) -> int:
    # Imported here: the parser is built on every command, the app only for this one.
    from .app import Dashboard
    from .security import Auth
    from .server import InsecureBindError, make

    try:
        auth = Auth.from_env(args.token, args.basic_auth)
    except ValueError as exc:
        raise usage_error(str(exc)) from None
    basic = f"{auth.basic[0]}:{auth.basic[1]}" if auth.basic else None
    app = Dashboard(queue, read_only=args.read_only, token=auth.token, basic_auth=basic)
    try:
        server = make(app, args.host, args.port)
    except InsecureBindError as exc:
        raise usage_error(str(exc)) from None
    except OSError as exc:
        raise usage_error(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    port = server.server_address[1]
    # The one line an operator needs; on stdout, since this is the CLI.
    print(f"queue-core dashboard on http://{args.host}:{port}/"
          + (" (read-only)" if args.read_only else ""), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
