"""Driver options: one declaration per option, one parser and one set of checks for all.

A driver lists its options as ``Option(name, kind, default, help)``. ``parse_query``
reads a URL's query string against that list and ``check_options`` checks keyword options
(from settings or a constructor call); both refuse an unknown option, naming the known
ones, and a bad value, naming what is expected. ``parameters_doc`` writes the numpy-style
"Parameters" block of a driver class from the same list.
"""

from __future__ import annotations

import inspect
import math
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from .errors import ConfigError
from .model import check_channel

ANYWHERE = "anywhere"
"""The option may be given in a URL's query string or as a keyword option."""
SETTINGS = "settings"
"""Keyword options only (a list, a dict, an object: nothing a query string holds)."""
URL = "url"
"""Query string only: the client library reads it from the URL the driver hands on."""
ADDRESS = "address"
"""The constructor's first argument: a URL's address part gives it, never its query."""


def redact_url(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


@dataclass(frozen=True)
class Kind:
    """What values an option takes.

    ``from_text`` turns a query-string value into a value (raising ValueError with what
    the text is not); ``accepts`` says whether a value, from a URL or from settings, is
    valid; ``normal`` turns an accepted value into the one the driver keeps."""

    name: str
    """The type, as the Parameters block shows it."""
    expected: str
    """What a valid value is, for error messages: 'a number of seconds > 0'."""
    from_text: Callable[[str], Any]
    accepts: Callable[[Any], bool]
    normal: Callable[[Any], Any] = lambda value: value
    show: Callable[[Any], str] = repr
    """A value as the Parameters block shows it."""


_FLAG_TEXT = {"1": True, "true": True, "yes": True, "on": True,
              "0": False, "false": False, "no": False, "off": False}


def _flag_text(text: str) -> bool:
    try:
        return _FLAG_TEXT[text.strip().lower()]
    except KeyError:
        raise ValueError("true or false (1/0, yes/no, on/off)") from None


def _number_text(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError("a number") from None


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


FLAG = Kind("bool", "true or false", _flag_text, lambda value: isinstance(value, bool))


def _range(minimum: float | None, maximum: float | None, above: bool) -> str:
    if minimum is not None and maximum is not None:
        return f"from {minimum:g} to {maximum:g}"
    if minimum is not None:
        return f"{'>' if above else '>='} {minimum:g}"
    return f"<= {maximum:g}" if maximum is not None else ""


def _within(value: float, minimum: float | None, maximum: float | None, above: bool) -> bool:
    if minimum is not None and (value <= minimum if above else value < minimum):
        return False
    return maximum is None or value <= maximum


def number(minimum: float | None = None, maximum: float | None = None, *,
           above: bool = False, unit: str = "a number") -> Kind:
    """A finite number within bounds (``above``: strictly greater than ``minimum``)."""
    bounds = _range(minimum, maximum, above)
    return Kind("float", f"{unit} {bounds}".strip(), _number_text,
                lambda value: _is_number(value) and _within(value, minimum, maximum, above),
                float)


def seconds(minimum: float | None = 0.0, maximum: float | None = None, *,
            above: bool = False) -> Kind:
    """A duration in seconds (>= 0 unless told otherwise)."""
    return number(minimum, maximum, above=above, unit="a number of seconds")


def whole(minimum: int | None = None, maximum: int | None = None) -> Kind:
    """A whole number within bounds; ``3.0`` in a URL is 3, ``3.0`` in settings is not."""
    def from_text(text: str) -> Any:
        value = _number_text(text)
        return int(value) if math.isfinite(value) and value == int(value) else value
    bounds = _range(minimum, maximum, False)
    return Kind("int", f"a whole number {bounds}".strip(), from_text,
                lambda value: isinstance(value, int) and not isinstance(value, bool)
                and _within(value, minimum, maximum, False))


def octal_mode(accepts: Callable[[int], bool], expected: str) -> Kind:
    """File permissions: octal digits in a URL (``660``), an int in settings (``0o660``)."""
    def from_text(text: str) -> int:
        try:
            return int(text, 8)
        except ValueError:
            raise ValueError("octal permissions such as 600 or 660") from None
    return Kind("int (octal)", expected, from_text,
                lambda value: isinstance(value, int) and not isinstance(value, bool)
                and accepts(value), show=oct)


def text(*, empty: bool = False) -> Kind:
    """A string (non-empty unless ``empty``)."""
    return Kind("str", "a string" if empty else "a non-empty string", lambda value: value,
                lambda value: isinstance(value, str) and (empty or bool(value)))


def choice(*values: str) -> Kind:
    """One of a few words."""
    listed = " or ".join(repr(value) for value in values)
    return Kind("str", listed, lambda value: value, lambda value: value in values)


def hosts(expected: str) -> Kind:
    """A non-empty list of hosts from settings (a list or tuple, never a bare string);
    the driver checks each entry in its own terms."""
    def from_text(raw: str) -> list[str]:
        return [part.strip() for part in raw.split(",")]
    return Kind("list", expected, from_text,
                lambda value: isinstance(value, (list, tuple)) and bool(value))


def mapping(what: str = "a dict") -> Kind:
    def from_text(raw: str) -> Any:
        raise ValueError(what)
    return Kind("dict", what, from_text, lambda value: isinstance(value, Mapping))


def anything(what: str) -> Kind:
    """Any value: the library it is passed to checks it."""
    return Kind("object", what, lambda value: value, lambda value: True)


@dataclass(frozen=True)
class Option:
    """One option of a driver."""

    name: str
    kind: Kind
    default: Any
    help: str
    where: str = ANYWHERE
    """ANYWHERE, SETTINGS, URL or ADDRESS (see the constants of this module)."""
    passed_on: bool = False
    """The client library's option: checked here, then handed on to it."""
    check: Callable[[Any], Any] | None = None
    """A check of its own that replaces the kind's (it raises its own ConfigError and
    returns the value to keep): the channel's."""
    none: bool = False
    """None is a valid value too (the client library's default)."""


def _key(name: str) -> str:
    return f"driver.{name}"


def _unknown(driver: str, name: str, declared: Sequence[Option], where: str) -> ConfigError:
    usable = [o.name for o in declared if o.where in (ANYWHERE, where)]
    place = "URL option" if where == URL else "option"
    return ConfigError(f"the {driver} driver's {place} {name!r} is not known; known "
                       f"{place}s: {', '.join(usable) or 'none'}", key=_key(name))


def check_value(driver: str, option: Option, value: Any) -> Any:
    """``value`` checked against the option; what the driver keeps."""
    if option.check is not None:
        return option.check(value)
    if value is None and option.none:
        return None
    if not option.kind.accepts(value):
        raise ConfigError(f"the {driver} driver's {option.name} must be "
                          f"{option.kind.expected}, got {value!r}", key=_key(option.name))
    return option.kind.normal(value)


def check_options(driver: str, declared: Sequence[Option],
                  values: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword options checked: an unknown one, one that only a URL can give (or that
    the URL's address gives), or a bad value raises ConfigError naming it. Returns the
    values the driver keeps."""
    by_name = {option.name: option for option in declared}
    checked = {}
    for name, value in values.items():
        option = by_name.get(name)
        if option is None or option.where in (URL, ADDRESS):
            raise _unknown(driver, str(name), declared, SETTINGS)
        checked[name] = check_value(driver, option, value)
    return checked


def parse_query(driver: str, declared: Sequence[Option], query: str) -> dict[str, Any]:
    """A URL's query string read against the declared options: each value converted
    from text and checked. An option named twice, unknown, or one only settings can give
    (a list, a dict) raises ConfigError."""
    by_name = {option.name: option for option in declared}
    found: dict[str, Any] = {}
    for name, raw in parse_qsl(query, keep_blank_values=True):
        option = by_name.get(name)
        if option is None or option.where in (SETTINGS, ADDRESS):
            raise _unknown(driver, name, declared, URL)
        if name in found:
            raise ConfigError(f"{driver} URL option {name} is given twice", key=_key(name))
        try:
            value = option.kind.from_text(raw)
        except ValueError as exc:
            raise ConfigError(f"{driver} URL option {name}={raw!r} is not {exc}: {name} "
                              f"must be {option.kind.expected}", key=_key(name)) from None
        found[name] = check_value(driver, option, value)
    return found


CHANNEL = Option("channel", text(), "queue",
                 "A named queue on the same back end: 1 to 100 letters, digits, '_', '.' "
                 "or '-'.", check=check_channel)
LEASE_GRACE = Option("lease_grace", seconds(0), 1.0,
                     "Seconds a lease outlives the ttr, so that a worker that hit its time "
                     "limit can still report.")


def split_url(driver: str, declared: Sequence[Option],
              url: str) -> tuple[str, dict[str, Any]]:
    """``url`` without its query string, and the options the query string gives."""
    base, _, query = url.partition("?")
    return base, parse_query(driver, declared, query)


def url_and_options(driver: str, declared: Sequence[Option], url: str,
                    given: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """What ``from_url(url, **given)`` needs: the URL without its query string, and its
    options, checked, keyword options winning over the query string's."""
    base, found = split_url(driver, declared, url)
    return base, {**found, **check_options(driver, declared, given)}


def names(declared: Iterable[Option], *, passed_on: bool | None = None) -> tuple[str, ...]:
    return tuple(option.name for option in declared
                 if passed_on is None or option.passed_on == passed_on)


_WHERE_NOTE = {SETTINGS: " Settings only, not in a URL.",
               URL: " In the URL's query string only.",
               ADDRESS: ""}


def parameters_doc(declared: Sequence[Option]) -> str:
    """The numpy-style "Parameters" block for a docstring."""
    lines = ["Parameters", "----------"]
    for option in declared:
        default = "" if option.where == ADDRESS and option.default is None else (
            f", default {option.kind.show(option.default)}")
        lines.append(f"{option.name} : {option.kind.name}{default}")
        note = _WHERE_NOTE.get(option.where, "")
        passed = " Passed on to the client library." if option.passed_on else ""
        lines += textwrap.wrap(f"{option.help}{note}{passed}", 88,
                               initial_indent="    ", subsequent_indent="    ")
    return "\n".join(lines)


def documented(declared: Sequence[Option]) -> Callable[[type], type]:
    """Class decorator: append the Parameters block of ``declared`` to the docstring."""
    def decorate(cls: type) -> type:
        head = inspect.cleandoc(cls.__doc__ or "")
        block = parameters_doc(declared)
        cls.__doc__ = f"{head}\n\n{block}\n" if head else f"{block}\n"
        return cls
    return decorate
