"""The queue component configuration, as an app keeps it in its settings.

Run a worker on it with:  queue-core --app examples.settings:queue listen
"""

from __future__ import annotations

import os

from queue_core import create_queue

QUEUE = {
    # The embedded default: a directory, no server. Swap in "redis://localhost:6379/0",
    # "postgresql://..." and so on once those drivers are installed.
    "driver": os.environ.get("QUEUE_URL", "file://./queue-data"),
    "channel": "mail",
    "ttr": 30,                       # each run may take 30 s, then it is interrupted
    "attempts": 4,                   # runs in all, the first included
    "backoff": {"type": "exponential", "delay": 0.2, "jitter": 0.1},
    "keep_completed": True,          # so the demo can show results
    "imports": ["examples.jobs"],    # the worker imports these to know the job types
    "events": {
        "before_push": "examples.hooks:tag_priority",
        "after_error": "examples.hooks:log_error",
        "after_fail": "examples.hooks:alert_on_failure",
    },
}

queue = create_queue(QUEUE)
