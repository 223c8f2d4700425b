"""The db driver's commands: ``queue-core db init [--sql]`` creates its table, or prints
the SQL for a DBA to apply."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from queue_core.driver_commands import DriverCommand
from queue_core.errors import NotSupportedError

if TYPE_CHECKING:
    import argparse

    from queue_core.queue import Queue


def _init_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sql", action="store_true",
                        help="print the SQL instead of running it (for a DBA to apply)")


def _init(queue: Queue, args: argparse.Namespace) -> int:
    driver: Any = queue.driver
    if not callable(getattr(driver, "ddl", None)):
        raise NotSupportedError(f"the {driver.name} driver keeps no table; 'db init' is for "
                                "the db driver")
    if args.sql:
        for statement in driver.ddl():
            print(f"{statement};\n")
        return 0
    driver.create_table()
    print(f"table {driver.table} is ready in {driver.describe()}")
    return 0


COMMANDS = (
    DriverCommand("db", "the DB driver's table", "init", "create the table and its indexes",
                  _init_arguments, _init),
)
