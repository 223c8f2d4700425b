"""A same-host doorbell for local drivers: a push wakes idle workers at once.

Each waiting consumer binds a Unix datagram socket in a shared directory; ``ring`` sends
one datagram to every socket there. A doorbell is only a hint: ringing never fails or
blocks a push (errors are logged at debug level and dropped), and waiters still look at
the queue at their poll interval, so a lost ring costs at most that interval. Where Unix
sockets do not exist (Windows), or a path cannot be bound, ``wait`` simply sleeps.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import socket
import sys
import tempfile
import threading
import time
import zlib

logger = logging.getLogger(__name__)

SOCKET_PATH_MAX = 100
"""Longest socket path bound or addressed directly (the system limit is 104 bytes on BSD
and macOS, 108 on Linux); Linux reaches longer ones through /proc/self/fd."""
_AVAILABLE = hasattr(socket, "AF_UNIX") and os.listdir in os.supports_fd and (
    os.unlink in os.supports_dir_fd and os.chmod in os.supports_dir_fd)
_BY_FD = sys.platform.startswith("linux") and os.path.isdir("/proc/self/fd")
_DIRECTORY_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_GONE = (errno.ECONNREFUSED, errno.ENOTSOCK)
"""What sending to a socket file nobody is bound to any more gives (a waiter that died)."""
_BUSY = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.ENOENT)
"""A full socket buffer (its worker is awake already) or a waiter that just left."""


class Doorbell:
    """Wakes the consumers waiting on ``directory`` (created by the first waiter).

    ``prefix`` keeps several queues apart in one directory; ``mode`` is the permission of
    the socket files (connecting needs write permission, so a pusher must be allowed to
    write them), and the directory gets the same bits plus search where reading is allowed.
    With ``mode_of``, the mode is that file's, read when the first waiter binds (owner
    read and write always included).
    """

    def __init__(self, directory: str | os.PathLike[str], *, prefix: str = "",
                 mode: int = 0o600, mode_of: str | None = None) -> None:
        self.directory = os.fspath(directory)
        self.prefix = prefix
        self.mode = mode
        self.mode_of = mode_of
        self._names = re.compile(rf"^{re.escape(prefix)}w[0-9a-f]{{16}}$")
        self._lock = threading.Lock()
        self._sender: socket.socket | None = None
        self._sock: socket.socket | None = None
        self._name = ""
        self._pid = 0
        self._unbindable = not _AVAILABLE

    @property
    def listening(self) -> bool:
        """Whether this process has a bound socket, so that ``wait`` wakes on a ring."""
        return self._sock is not None and self._pid == os.getpid()

    # -- pushers ------------------------------------------------------------------------

    def ring(self) -> None:
        """Wake every waiter. Never raises; a waiter that is not reached wakes at its
        next poll."""
        if not _AVAILABLE:
            return
        try:
            fd = os.open(self.directory, _DIRECTORY_FLAGS)
        except OSError:
            return  # no consumer ever waited here
        try:
            sender = self._sender or self._make_sender()
            for name in os.listdir(fd):
                if self._names.match(name):
                    self._send(sender, fd, name)
        except Exception as exc:  # noqa: BLE001 - a doorbell must never fail a push
            logger.debug("doorbell %s: not rung: %s", self.directory, exc)
        finally:
            os.close(fd)

    def _make_sender(self) -> socket.socket:
        with self._lock:
            if self._sender is None:
                sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sender.setblocking(False)
                self._sender = sender
            return self._sender

    def _send(self, sender: socket.socket, fd: int, name: str) -> None:
        address = self._address(fd, name)
        if address is None:
            return
        try:
            sender.sendto(b"\0", address)
        except OSError as exc:
            if exc.errno in _GONE:
                try:
                    os.unlink(name, dir_fd=fd)
                    logger.debug("doorbell %s: removed %s, whose waiter is gone",
                                 self.directory, name)
                except OSError:
                    pass
            elif exc.errno not in _BUSY:
                logger.debug("doorbell %s: cannot ring %s: %s", self.directory, name, exc)

    def _address(self, fd: int, name: str) -> str | None:
        """How to name a socket of the directory open as ``fd``: its path, or on Linux a
        path through /proc when that would be too long; None when it cannot be named."""
        path = os.path.join(self.directory, name)
        if len(os.fsencode(path)) <= SOCKET_PATH_MAX:
            return path
        if _BY_FD:
            return f"/proc/self/fd/{fd}/{name}"
        return None

    # -- consumers ----------------------------------------------------------------------

    def wait(self, timeout: float) -> bool:
        """Block until rung or ``timeout`` seconds passed; True when rung. The first call
        only binds the socket and returns True at once: a push just before it rang nobody,
        so the caller looks at the queue again before waiting."""
        if not self.listening:
            self._sock = None  # one inherited across a fork is the parent's
            if self._unbindable or not self._bind():
                if timeout > 0:
                    time.sleep(timeout)
                return False
            return True
        sock = self._sock
        assert sock is not None
        try:
            sock.settimeout(timeout if timeout > 0 else 0.0)
            sock.recv(16)
        except (TimeoutError, BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            logger.debug("doorbell %s: waiting failed (%s); polling instead",
                         self.directory, exc)
            self._forget(unlink=True)
            if timeout > 0:
                time.sleep(timeout)
            return False
        self._drain(sock)
        return True

    @staticmethod
    def _drain(sock: socket.socket) -> None:
        """Read the rings already queued: many pushes while we worked wake us once."""
        sock.settimeout(0.0)
        for _ in range(1024):
            try:
                sock.recv(16)
            except OSError:
                return

    def _bind(self) -> bool:
        name = f"{self.prefix}w{secrets.token_hex(8)}"
        sock: socket.socket | None = None
        fd = -1
        try:
            if self.mode_of is not None and os.path.exists(self.mode_of):
                self.mode = os.stat(self.mode_of).st_mode & 0o666 | 0o600
            _make_dir(self.directory, self.mode | (self.mode & 0o444) >> 2)
            fd = os.open(self.directory, _DIRECTORY_FLAGS)
            address = self._address(fd, name)
            if address is None:
                logger.debug("doorbell %s: path too long for a socket; polling instead",
                             self.directory)
                self._unbindable = True
                return False
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(address)
            os.chmod(name, self.mode, dir_fd=fd)
        except OSError as exc:
            logger.debug("doorbell %s: cannot listen (%s); polling instead",
                         self.directory, exc)
            if sock is not None:
                sock.close()
                _unlink_quietly(self.directory, name)
            self._unbindable = True
            return False
        finally:
            if fd >= 0:
                os.close(fd)
        self._sock, self._name, self._pid = sock, name, os.getpid()
        return True

    def _forget(self, *, unlink: bool) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
            if unlink:
                _unlink_quietly(self.directory, self._name)

    # -- lifecycle ----------------------------------------------------------------------

    def after_fork(self) -> None:
        """In a forked child: the bound socket is the parent's. Close our copy (the
        parent's stays open) without removing its file, so the child never reads the
        parent's rings; the child binds its own if it waits."""
        if self._sock is not None and self._pid != os.getpid():
            self._forget(unlink=False)

    def close(self) -> None:
        """Stop listening and remove our socket file. Safe to call twice."""
        if self._sock is not None:
            self._forget(unlink=self._pid == os.getpid())
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.close()


def doorbell_beside(path: str | None, topic: str) -> Doorbell | None:
    """A doorbell in ``<path>.wake/`` for the users of one file (such as an SQLite
    database), its sockets named apart by ``topic`` and given the file's permissions;
    None when ``path`` names no file on disk (an in-memory or URI database)."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    path = os.path.abspath(path)
    prefix = f"{zlib.crc32(topic.encode()):08x}-"
    return Doorbell(path + ".wake", prefix=prefix, mode_of=path)


def doorbell_on_host(address: str, topic: str) -> Doorbell | None:
    """A doorbell for the users of one server-side queue (``address`` names the server and
    database, ``topic`` the queue in it) who run on this host as this user: a directory
    per user under the temporary directory. Pushers elsewhere do not ring it; their jobs
    wait for the poll. None where the platform has no user ids."""
    if not hasattr(os, "getuid"):
        return None
    # The user's own runtime directory where there is one: nobody else can create it.
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    directory = os.path.join(base, f"queue-core-wake-{os.getuid()}")
    key = f"{address}\0{topic}".encode()
    return Doorbell(directory, prefix=f"{zlib.crc32(key):08x}-", mode=0o600)


def _make_dir(path: str, mode: int) -> None:
    """Create ``path`` (and missing parents) with exactly ``mode`` whatever the umask; an
    existing one is kept."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent and parent != path:
        _make_dir(parent, mode)
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        return
    os.chmod(path, mode)


def _unlink_quietly(directory: str, name: str) -> None:
    try:
        fd = os.open(directory, _DIRECTORY_FLAGS)
    except OSError:
        return
    try:
        os.unlink(name, dir_fd=fd)
    except OSError:
        pass
    finally:
        os.close(fd)
