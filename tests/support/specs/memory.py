from pathlib import Path
from typing import Any

from tests.support.drivers import LEASE_GRACE, DriverSpec

ORDER = 5


def settings(tmp: Path, channel: str) -> dict[str, Any]:
    # Named by the test's directory: the queues a test builds share the jobs, as they
    # would on a server.
    return {"driver": {"url": f"memory://{tmp.name}", "lease_grace": LEASE_GRACE},
            "channel": channel}


SPECS = [DriverSpec("memory", "queue_core.drivers.memory:MemoryDriver", settings)]
