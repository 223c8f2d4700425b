"""A module no payload may ever make a worker import or call.

Importing it, or calling its ``sing``, appends to the file named by $QUEUE_TEST_CANARY;
the hostile-payload tests name it in every field of a payload and check nothing was
written and the module is not loaded.
"""

from __future__ import annotations

import os
from typing import Any

from .jobs import append

_path = os.environ.get("QUEUE_TEST_CANARY")
if _path:
    append(_path, f"imported by {os.getpid()}")


def sing(*args: Any, **kwargs: Any) -> float:
    if _path:
        append(_path, f"called by {os.getpid()}")
    return 0.0
