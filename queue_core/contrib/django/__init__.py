"""Django integration (extra ``django``): queues from ``settings.QUEUE_CORE``, ``manage.py
queue ...``, pushes on commit and in the caller's transaction, and a ``django.tasks``
backend."""
