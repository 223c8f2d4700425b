"""Small helpers for tests that script a peer on a socketpair or set the process umask."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager


def written(peer: socket.socket) -> bytes:
    """Everything the other end has written so far (a socketpair delivers a write at
    once), without waiting for more."""
    peer.setblocking(False)
    data = b""
    try:
        while True:
            chunk = peer.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    except BlockingIOError:
        pass
    finally:
        peer.setblocking(True)
    return data


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)
