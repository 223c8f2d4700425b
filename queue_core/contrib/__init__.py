"""Integrations with web frameworks and test runners, each behind its own extra and imported
only by the apps that use it: ``queue_core.contrib.django``, ``queue_core.contrib.flask``."""
