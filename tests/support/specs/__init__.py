"""One module per driver, each defining ``SPECS: list[DriverSpec]`` and ``ORDER: int``.

A new driver joins every suite by adding a module here; nothing else is edited."""
