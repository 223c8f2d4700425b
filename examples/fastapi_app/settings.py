"""The queue's settings, shared by the web app (``main.py``) and the worker
(``queue-core --app examples.fastapi_app.settings:queue_settings listen``, a factory
target); importing this module imports neither FastAPI nor the app."""

from __future__ import annotations

import os
from typing import Any


def queue_settings() -> dict[str, Any]:
    return {
        "driver": os.environ.get("EXAMPLE_QUEUE_URL", "file://./fastapi-queue-data"),
        "attempts": 3,
        "keep_completed": 100,  # so that GET /jobs/{id} shows a finished job's result
        "imports": ["examples.fastapi_app.jobs"],
    }


def reports_dir() -> str:
    """Where the example's job writes its reports."""
    return os.environ.get("EXAMPLE_REPORTS_DIR", "./fastapi-reports")
