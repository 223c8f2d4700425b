"""The fields every log record about one job carries, as ``extra``: ``job_id``,
``job_name``, ``attempt`` and ``queue``. A JSON formatter (python-json-logger, structlog's
stdlib bridge, or ``record.__dict__``) picks them up; a plain formatter ignores them.
A field that is not known where the record is made (a driver never decodes the payload,
so it knows no job name) is None, never missing, so that a formatter can rely on it.
"""

from __future__ import annotations

from typing import Any

FIELDS = ("job_id", "job_name", "attempt", "queue")


def job_name(job: object) -> str | None:
    """The registered name of ``job`` (None when no job could be decoded)."""
    if job is None:
        return None
    return getattr(type(job), "job_name", None) or type(job).__qualname__


def job_extra(queue: str | None, job_id: str | None, job: object = None,
              attempt: int | None = None) -> dict[str, Any]:
    """``extra`` for a log record about job ``job_id`` of the queue (channel) ``queue``
    (None where it is not known)."""
    return {"job_id": job_id, "job_name": job_name(job), "attempt": attempt, "queue": queue}
