"""No models: the queue's tables belong to its driver. This module exists so that Django
sends ``post_migrate`` for this app, which creates them (see apps.py)."""
