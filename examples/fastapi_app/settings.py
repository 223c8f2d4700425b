"""The queue's settings, shared by the web app (``main.py``) and the worker
(``queue-core --app examples.fastapi_app.settings:QUEUE listen``); importing this module
imports neither FastAPI nor the app."""

from __future__ import annotations

import os
from typing import Any

QUEUE: dict[str, Any] = {
    "driver": os.environ.get("EXAMPLE_QUEUE_URL", "file://./fastapi-queue-data"),
    "attempts": 3,
    "keep_completed": 100,  # so that GET /jobs/{id} shows a finished job's details
    "imports": ["examples.fastapi_app.jobs"],
}
REPORTS = os.environ.get("EXAMPLE_REPORTS_DIR", "./fastapi-reports")
"""Where the example's job writes its reports."""
