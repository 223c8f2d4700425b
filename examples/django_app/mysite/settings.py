"""Settings of the example project: one SQLite database that holds both the shop's orders
and the queue's jobs, so that a job can be written in the order's own transaction."""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "example-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "mysite.urls"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "queue_core.contrib.django",     # manage.py queue ...; its tables made by migrate
    "shop",                          # shop/jobs.py is found by the workers
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
        # A web request and the workers write at the same time: take the write lock at
        # BEGIN, so that no transaction fails half-way with "database is locked".
        "OPTIONS": {"transaction_mode": "IMMEDIATE"},
    },
}

QUEUE_CORE = {
    "default": {
        "database": "default",       # the db driver on DATABASES["default"]
        "push_on_commit": True,      # queue_core.contrib.django.push() waits for the commit
        "ttr": 60,
        "attempts": 3,
        "backoff": {"type": "exponential", "delay": 1},
    },
}
