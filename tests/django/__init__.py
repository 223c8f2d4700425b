"""The Django integration, driven through a real project (examples/django_app)."""
