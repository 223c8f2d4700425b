"""beanstalk: a beanstalkd the test run starts itself on a free port, when the binary is on
PATH (CI installs the Debian package), shared by every test, a tube per test."""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.support.drivers import LEASE_GRACE, DriverSpec

ORDER = 50
_server: dict[str, Any] = {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port() -> int:
    """The shared test beanstalkd, started on first use."""
    if "port" not in _server:
        binary = shutil.which("beanstalkd")
        assert binary is not None
        number = _free_port()
        # -z: room for the suite's 100 KB payload (beanstalkd's default limit is 64 KB).
        process = subprocess.Popen([binary, "-l", "127.0.0.1", "-p", str(number),
                                    "-z", "1048576"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        atexit.register(process.kill)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", number), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        _server.update(port=number, process=process)
    return int(_server["port"])


def available() -> str | None:
    if shutil.which("beanstalkd") is None:
        return "beanstalkd is not on PATH (apt-get install beanstalkd; .ci/run does it)"
    port()
    return None


def settings(tmp: Path, channel: str) -> dict[str, Any]:
    return {"driver": {"url": f"beanstalk://127.0.0.1:{port()}", "lease_grace": LEASE_GRACE},
            "channel": channel}


SPECS = [DriverSpec("beanstalk", "queue_core.drivers.beanstalk:BeanstalkDriver", settings,
                    available)]
