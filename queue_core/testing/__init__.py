"""Testing helpers for applications that use queue-core, and its pytest plugin."""
