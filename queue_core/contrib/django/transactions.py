"""Pushing with Django's transactions.

- ``push_on_commit``: the push waits for the commit of the current ``transaction.atomic()``
  block (and never happens if it rolls back); any driver. A crash between the commit and
  the push loses the job.
- ``push_in_transaction``: the job row is written through Django's own connection, in its
  current transaction (the outbox): atomic with the app's rows; only the db driver on the
  same database.
- ``push``: what the queue's settings make the default (``"push_on_commit": True``).
"""

from __future__ import annotations

from typing import Any

from ...errors import ConfigError
from ...job import Job
from ...queue import Queue
from .queues import DEFAULT, queues


def _queue(queue: str | Queue) -> Queue:
    return queue if isinstance(queue, Queue) else queues[queue]


def push_on_commit(job: Job, queue: str | Queue = DEFAULT, using: str | None = None, *,
                   robust: bool = False, **push_kwargs: Any) -> str | None:
    """Push ``job`` once the transaction open on the Django database ``using`` (default:
    Django's default database) commits; never if it rolls back. Outside a transaction the
    job is pushed at once and its id returned; inside one, None (the id does not exist
    yet). ``robust=True`` logs a push that fails after the commit instead of raising it
    from the commit (Django's ``on_commit(robust=)``)."""
    from django.db import transaction

    target = _queue(queue)
    if not transaction.get_connection(using).in_atomic_block:
        return target.push(job, **push_kwargs)

    def push() -> None:
        target.push(job, **push_kwargs)

    transaction.on_commit(push, using=using, robust=robust)
    return None


def push_in_transaction(job: Job, queue: str | Queue = DEFAULT, using: str | None = None,
                        **push_kwargs: Any) -> str | None:
    """Write ``job`` in the current transaction of the Django database ``using`` (default:
    the queue's ``database``): a rollback leaves no job, a commit makes it visible to the
    workers at once. Outside a transaction it is written in Django's autocommit. The
    queue must be on the db driver, on that same database."""
    from django.db import connections

    target = _queue(queue)
    # Django's connection itself, not its DB-API one: the db driver then also wakes the
    # idle workers of this host (SQLite, MySQL) once Django commits.
    return target.push(job, connection=connections[_alias_for(queue, using)], **push_kwargs)


def _alias_for(queue: str | Queue, using: str | None) -> str:
    """The Django database to write through: ``using``, else the queue's ``database``.
    (The db driver refuses a connection to another database than its own.)"""
    if using is not None:
        return using
    database = None if isinstance(queue, Queue) else queues.config(queue).database
    if database is None:
        raise ConfigError(f"push_in_transaction: queue {queue!r} is not on a Django "
                          "database: set 'database' in its QUEUE_CORE settings, or pass "
                          "using= naming the alias of the database its driver uses",
                          key="database")
    return database


def push(job: Job, queue: str = DEFAULT, using: str | None = None,
         **push_kwargs: Any) -> str | None:
    """Push ``job`` the way the queue's settings ask: on commit when it has
    ``"push_on_commit": True`` (see ``push_on_commit``; ``using`` names the database whose
    transaction it waits for), else at once."""
    if queues.config(queue).push_on_commit:
        return push_on_commit(job, queue, using, **push_kwargs)
    return queues[queue].push(job, **push_kwargs)
