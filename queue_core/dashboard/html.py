"""HTML building with escaping by default.

Every value put into a page goes through ``render``, which escapes it unless it is
``Safe`` (markup this package built itself). Payloads, error messages and tracebacks come
from the store, which anyone who can push a job writes to: escaping at the one place
values meet markup is what keeps a ``<script>`` in a payload a piece of text.
"""

from __future__ import annotations

import datetime
import html
import string
from collections.abc import Iterable
from typing import Any


class Safe(str):
    """Markup built by the dashboard itself; ``render`` inserts it as it is."""

    __slots__ = ()


def escape(value: Any) -> Safe:
    if isinstance(value, Safe):
        return value
    return Safe(html.escape("" if value is None else str(value), quote=True))


def render(template: str, **values: Any) -> Safe:
    """``template`` with ``{name}`` fields filled in, each value escaped unless Safe.

    Only plain ``{name}`` fields are allowed: a format spec or attribute lookup could
    turn a stored value into something else before it is escaped."""
    for _, field, spec, conversion in string.Formatter().parse(template):
        if field is not None and (spec or conversion or not field.isidentifier()):
            raise ValueError(f"template field {field!r} must be a plain name")
    return Safe(template.format(**{name: escape(value) for name, value in values.items()}))


def join(parts: Iterable[Safe]) -> Safe:
    return Safe("".join(escape(part) for part in parts))


def when(timestamp: float | None) -> str:
    """A stored time for people (UTC, to the second); a stored value that is not a time
    is shown as it is, since it says something about the record."""
    if timestamp is None:
        return "-"
    try:
        moment = datetime.datetime.fromtimestamp(float(timestamp), tz=datetime.timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return f"? ({timestamp!r})"
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
