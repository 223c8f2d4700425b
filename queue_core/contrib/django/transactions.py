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
    workers at once. Outside a transaction it is an ordinary push. The queue must be on
    the db driver, on that same database."""
    from django.db import connections, transaction

    target = _queue(queue)
    alias = _alias_for(queue, using)
    wrapper = connections[alias]
    if not wrapper.in_atomic_block:
        return target.push(job, **push_kwargs)
    wrapper.ensure_connection()
    job_id = target.push(job, connection=wrapper.connection, **push_kwargs)
    ring = getattr(target.driver, "ring", None)
    if ring is not None:
        # Idle workers on this host wait on a doorbell (SQLite, MySQL): ring it once the
        # row can be seen. PostgreSQL's NOTIFY is sent at the commit by itself.
        transaction.on_commit(ring, using=alias, robust=True)
    return job_id


def _alias_for(queue: str | Queue, using: str | None) -> str:
    """The Django database to write through: the queue's own ``database``, or ``using``
    when it has the same connection settings."""
    from .databases import driver_settings

    database = None if isinstance(queue, Queue) else queues.config(queue).database
    if database is None:
        if using is None:
            raise ConfigError(f"push_in_transaction: queue {queue!r} is not on a Django "
                              "database: set 'database' in its QUEUE_CORE settings (or pass "
                              "using= naming the alias of the database its driver uses)",
                              key="database")
        return using
    if using is not None and using != database and (
            driver_settings(using)["url"] != driver_settings(database)["url"]):
        raise ConfigError(f"push_in_transaction: queue {queue!r} stores its jobs in Django "
                          f"database {database!r}, not {using!r}: a transaction of {using!r} "
                          "cannot hold its job", key="database")
    return using or database


def push(job: Job, queue: str = DEFAULT, using: str | None = None,
         **push_kwargs: Any) -> str | None:
    """Push ``job`` the way the queue's settings ask: on commit when it has
    ``"push_on_commit": True`` (see ``push_on_commit``; ``using`` names the database whose
    transaction it waits for), else at once."""
    if queues.config(queue).push_on_commit:
        return push_on_commit(job, queue, using, **push_kwargs)
    return queues[queue].push(job, **push_kwargs)
