"""The dashboard's own static files (CSS, JS), served from the installed package.

Nothing is fetched from the network: the pages work offline and behind any firewall."""

from __future__ import annotations

from importlib import resources

TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".svg": "image/svg+xml"}


def load(name: str) -> tuple[bytes, str] | None:
    """The file's bytes and content type; None for a name that is not one of ours."""
    suffix = name[name.rfind("."):] if "." in name else ""
    if suffix not in TYPES or "/" in name or name.startswith("."):
        return None
    entry = resources.files(__package__).joinpath("static").joinpath(name)
    try:
        return entry.read_bytes(), TYPES[suffix]
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
