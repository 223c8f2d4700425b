from pathlib import Path
from typing import Any

from tests.support.drivers import LEASE_GRACE, DriverSpec

ORDER = 10


def settings(tmp: Path, channel: str) -> dict[str, Any]:
    return {"driver": {"url": f"file://{tmp}/queue", "lease_grace": LEASE_GRACE},
            "channel": channel}


SPECS = [DriverSpec("file", "queue_core.drivers.file:FileDriver", settings)]
