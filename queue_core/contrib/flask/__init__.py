"""Flask integration (extra ``flask``): ``QueueCore(app)`` and ``flask queue ...``."""
