"""Throwaway local Redis servers for the tests, started with the redis-server binary on
free loopback ports: single servers, a 3-master Cluster, and a master + replica watched by
three Sentinels. Each keeps its files in a directory of its own and is SIGKILLed when
stopped.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.procs import wait_for

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
SERVICE = "queuecore"
"""The name of the master set the Sentinels watch."""


def missing_binaries() -> str | None:
    if REDIS_SERVER is None or REDIS_CLI is None:
        return "redis-server and redis-cli must be on PATH (apt-get install redis-server)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int, ask: Callable[[Any], Any]) -> Any:
    """``ask(client)`` on the server at ``port``, or None when it cannot answer."""
    import redis
    client = redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=2)
    try:
        return ask(client)
    except Exception:
        return None
    finally:
        client.close()


class RedisProcess:
    """One redis-server (or sentinel) process on a free port. With ``cluster_bus``, the
    cluster bus gets a free port of its own too (by default it is the port + 10000, which
    may be taken, or past 65535)."""

    def __init__(self, directory: Path, *args: str, conf: str | None = None,
                 cluster_bus: bool = False) -> None:
        self.port = free_port()
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.args = args
        self.conf = conf
        self.cluster_bus = cluster_bus
        self.process: subprocess.Popen[bytes] | None = None
        self.started = False

    def start(self) -> None:
        """Start (again, on the same port); the first start moves to other free ports if
        another process took the chosen one in the meantime."""
        for _ in range(3):
            self._spawn()
            if wait_for(lambda: self._up() is not None, 10, f"redis on port {self.port}"):
                if self._up():
                    self.started = True
                    return
            if self.started:
                break
            self.port = free_port()
        raise AssertionError(f"redis-server did not start; see {self.directory}/log.txt")

    def _up(self) -> bool | None:
        """True when it answers, False when it exited, None while it starts."""
        if _answers(self.port, lambda r: r.ping()):
            return True
        return False if self.process is None or self.process.poll() is not None else None

    def _spawn(self) -> None:
        assert REDIS_SERVER is not None
        command = [REDIS_SERVER]
        if self.conf is not None:
            # A Sentinel rewrites its configuration file, so it needs one of its own.
            path = self.directory / "sentinel.conf"
            path.write_text(f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n"
                            + self.conf)
            command += [str(path), "--sentinel"]
        else:
            command += ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", "--dir", str(self.directory), *self.args]
            if self.cluster_bus:
                command += ["--cluster-port", str(free_port())]
        log = open(self.directory / "log.txt", "ab")  # noqa: SIM115 (the process keeps it)
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait()


class Cluster:
    """Three masters with ``cluster-enabled yes``, joined by ``redis-cli --cluster create``
    with no replicas."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or Path(tempfile.mkdtemp(prefix="qc-cluster-"))
        self.nodes = [RedisProcess(self.directory / f"node{index}", "--cluster-enabled",
                                   "yes", "--cluster-node-timeout", "2000",
                                   "--cluster-config-file", "nodes.conf", cluster_bus=True)
                      for index in range(3)]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def start(self) -> None:
        assert REDIS_CLI is not None
        for node in self.nodes:
            node.start()
        subprocess.run([REDIS_CLI, "--cluster", "create",
                        *(f"127.0.0.1:{node.port}" for node in self.nodes),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, capture_output=True, timeout=60)
        def ready() -> bool:
            return all((_answers(node.port, lambda r: r.cluster("INFO")) or {}
                        ).get("cluster_state") == "ok" for node in self.nodes)
        wait_for(ready, 30, "the cluster to be ready", every=0.1)

    def owner(self, slot: int) -> RedisProcess:
        """The node that serves ``slot`` now."""
        for node in self.nodes:
            ranges = _answers(node.port, lambda r: r.execute_command("CLUSTER", "SLOTS"))
            for start, end, primary, *_ in ranges or []:
                if int(start) <= slot <= int(end):
                    return next(each for each in self.nodes if each.port == int(primary[1]))
        raise AssertionError(f"no node serves slot {slot}")

    def move_slot(self, slot: int, target: RedisProcess) -> None:
        """Migrate ``slot`` and its keys to ``target``, the way ``redis-cli --cluster
        reshard`` does (IMPORTING/MIGRATING, MIGRATE, then SETSLOT NODE everywhere)."""
        import redis
        source = self.owner(slot)
        if source is target:
            return
        clients: dict[int, Any] = {node.port: redis.Redis(port=node.port) for node in self.nodes}
        ids = {port: client.execute_command("CLUSTER", "MYID").decode()
               for port, client in clients.items()}
        src, dst = clients[source.port], clients[target.port]
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source.port])
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target.port])
        while True:
            keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
            if not keys:
                break
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000,
                                "KEYS", *keys)
        for port in (target.port, source.port,
                     *(node.port for node in self.nodes if node not in (source, target))):
            clients[port].execute_command("CLUSTER", "SETSLOT", slot, "NODE",
                                          ids[target.port])
        for client in clients.values():
            client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


class SentinelSet:
    """A master, one replica and three Sentinels with short timeouts, so a failover takes
    a few seconds."""

    def __init__(self, directory: Path, down_after_ms: int = 3000,
                 failover_timeout_ms: int = 3000) -> None:
        # Not shorter: on a loaded 2-core machine a new master busy serving the old one's
        # full resync can miss a second of pings, and a second failover onto that replica,
        # still empty, throws the data set away (seen once in CI with 1 s).
        # A new replica is served at once, not after the default 5 s wait for others.
        quick_sync = ("--repl-diskless-sync-delay", "0")
        self.master = RedisProcess(directory / "master", *quick_sync)
        self.replica = RedisProcess(directory / "replica", *quick_sync)
        self.sentinels = [RedisProcess(directory / f"sentinel{index}", conf="")
                          for index in range(3)]
        self.timeouts = (down_after_ms, failover_timeout_ms)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def start(self) -> None:
        # The master's port is known for sure once it runs (a taken port moves it).
        self.master.start()
        self.replica.args += ("--replicaof", "127.0.0.1", str(self.master.port))
        down_after_ms, failover_timeout_ms = self.timeouts
        conf = (f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}\n"
                f"sentinel failover-timeout {SERVICE} {failover_timeout_ms}\n"
                f"sentinel parallel-syncs {SERVICE} 1\n")
        for sentinel in self.sentinels:
            sentinel.conf = conf
        self.replica.start()
        wait_for(lambda: (_answers(self.replica.port, lambda r: r.info("replication")) or {}
                          ).get("master_link_status") == "up", 20, "the replica to sync",
                 every=0.1)
        for sentinel in self.sentinels:
            sentinel.start()
        # Every Sentinel must know the replica and the other Sentinels before a failover
        # can be agreed on.
        def ready() -> bool:
            for sentinel in self.sentinels:
                state = _answers(sentinel.port, lambda r: r.sentinel_master(SERVICE))
                if (not state or int(state.get("num-slaves", 0)) < 1
                        or int(state.get("num-other-sentinels", 0)) < 2):
                    return False
            return True
        wait_for(ready, 30, "the sentinels to see the replica and each other", every=0.1)

    def master_port(self) -> int | None:
        """The port of the master the Sentinels name now."""
        for sentinel in self.sentinels:
            found = _answers(sentinel.port,
                             lambda r: r.sentinel_get_master_addr_by_name(SERVICE))
            if found:
                return int(found[1])
        return None

    def replica_caught_up(self) -> bool:
        master = _answers(self.master.port, lambda r: r.info("replication")) or {}
        replica = _answers(self.replica.port, lambda r: r.info("replication")) or {}
        return bool(master.get("master_repl_offset", -1) == replica.get("slave_repl_offset", -2))

    def stop(self) -> None:
        for process in (*self.sentinels, self.replica, self.master):
            process.kill()
