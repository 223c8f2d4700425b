"""A Django project whose TASKS backend is queue-core's. The test gives the queue's
settings in QUEUE_TEST_SETTINGS (JSON) and, in QUEUE_TEST_TASKS_OPTIONS, how the backend
finds it: "QUEUE" (the queue of QUEUE_CORE, run by ``manage.py queue listen``) or
"SETTINGS" (inline, run by the tasks_worker factory)."""

import json
import os

SECRET_KEY = "tests-only"
USE_TZ = True
INSTALLED_APPS = ["queue_core.contrib.django", "django_tasks", "tasksapp"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
_QUEUE = json.loads(os.environ["QUEUE_TEST_SETTINGS"])
# No "imports": a TASKS backend of queue-core's makes the queue's worker import the tasks.
QUEUE_CORE = {"default": _QUEUE}
_OPTIONS = {
    "QUEUE": {"QUEUE": "default"},
    "SETTINGS": {"SETTINGS": _QUEUE},
}
TASKS = {
    "default": {
        "BACKEND": "queue_core.contrib.django.QueueCoreBackend",
        "QUEUES": ["default", "reports"],
        "OPTIONS": _OPTIONS[os.environ.get("QUEUE_TEST_TASKS_OPTIONS", "QUEUE")],
    },
}
