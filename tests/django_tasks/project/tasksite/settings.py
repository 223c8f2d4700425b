"""A Django project whose TASKS backend is queue-core's, on the queue the test gives in
QUEUE_TEST_SETTINGS (JSON)."""

import json
import os

SECRET_KEY = "tests-only"
USE_TZ = True
INSTALLED_APPS = ["django_tasks", "tasksapp"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
TASKS = {
    "default": {
        "BACKEND": "queue_core.contrib.django.QueueCoreBackend",
        "QUEUES": ["default", "reports"],
        "OPTIONS": {"SETTINGS": json.loads(os.environ["QUEUE_TEST_SETTINGS"])},
    },
}
