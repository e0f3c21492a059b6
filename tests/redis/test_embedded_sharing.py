"""One embedded redis-server per state_dir, however many processes start at once, kept while
any of them uses it, and never a stale server.json trusted (daemon/redis/embedded.py)."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import signal
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from queue import Queue

import pytest
import redis

from daemon.errors import StoreError
from daemon.redis.embedded import EmbeddedRedis

CTX = multiprocessing.get_context("spawn")


def _server_pid(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


def _answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


def _servers_of(state_dir: Path) -> list[int]:
    """PIDs of the redis-servers whose working directory is state_dir/redis."""
    want = (state_dir / "redis").resolve()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (
                Path(os.readlink(entry / "exe")).name == "redis-server"
                and Path(os.readlink(entry / "cwd")) == want
            ):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _user(state_dir: str, barrier: Barrier, out: Queue[tuple[str, int]], done: Event) -> None:
    """A process that starts using the state_dir's server the instant the others do."""
    barrier.wait()
    server = EmbeddedRedis(state_dir)
    url = server.start()
    out.put((url, _server_pid(url)))
    done.wait()
    server.stop()


@pytest.mark.parametrize("processes", [2, 3])
def test_processes_starting_together_share_one_server(tmp_path: Path, processes: int) -> None:
    barrier, done, out = CTX.Barrier(processes), CTX.Event(), CTX.Queue()
    procs = [
        CTX.Process(target=_user, args=(str(tmp_path), barrier, out, done))
        for _ in range(processes)
    ]
    for p in procs:
        p.start()
    try:
        seen = [out.get(timeout=60) for _ in procs]
        assert len(set(seen)) == 1  # one URL, one server process
        url, pid = seen[0]
        assert _servers_of(tmp_path) == [pid]
    finally:
        done.set()
        for p in procs:
            p.join(60)
    assert [p.exitcode for p in procs] == [0] * processes
    assert not _answers(url)  # the last user stopped it
    assert _servers_of(tmp_path) == []


def _starter(state_dir: str, out: Queue[str], done: Event) -> None:
    server = EmbeddedRedis(state_dir)
    out.put(server.start())
    done.wait()  # until SIGKILLed


def test_the_server_outlives_a_killed_starter_while_another_uses_it(tmp_path: Path) -> None:
    done, out = CTX.Event(), CTX.Queue()
    starter = CTX.Process(target=_starter, args=(str(tmp_path), out, done))
    starter.start()
    try:
        url = out.get(timeout=60)
        other = EmbeddedRedis(tmp_path)
        assert other.start() == url and not other.owned
        pid = _server_pid(url)
        client = redis.Redis.from_url(url)
        client.set("before", "1")
        os.kill(starter.pid or 0, signal.SIGKILL)
        starter.join(30)
        client.set("after", "2")  # the same server, still working
        assert _server_pid(url) == pid and client.get("before") == b"1"
        client.close()
        other.stop()  # now the last user: the server is shut down, its data flushed
        assert not _answers(url) and _servers_of(tmp_path) == []
        again = EmbeddedRedis(tmp_path)
        client = redis.Redis.from_url(again.start())
        assert (client.get("before"), client.get("after")) == (b"1", b"2")
        client.close()
        again.stop()
    finally:
        if starter.is_alive():
            starter.kill()


def test_a_stale_server_json_pointing_at_another_server_is_refused(tmp_path: Path) -> None:
    stranger = EmbeddedRedis(tmp_path / "elsewhere", persistent=False)
    foreign = stranger.start(reuse=False)
    try:
        (tmp_path / "redis").mkdir()
        (tmp_path / "redis" / "server.json").write_text(json.dumps({"url": foreign, "pid": 1}))
        ours = EmbeddedRedis(tmp_path)
        assert ours.running_url() is None
        url = ours.start()
        assert url != foreign and ours.owned
        assert _servers_of(tmp_path) == [_server_pid(url)]
        ours.stop()
        assert _answers(foreign)  # the other server was never touched
    finally:
        stranger.stop()


def test_a_server_json_of_a_dead_server_is_replaced(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path)
    url = first.start()
    dead = _server_pid(url)
    first.kill()  # redis-server dies; server.json stays behind
    assert json.loads((tmp_path / "redis" / "server.json").read_text())["url"] == url
    again = EmbeddedRedis(tmp_path)
    new = again.start()
    assert again.owned and _server_pid(new) != dead
    assert json.loads((tmp_path / "redis" / "server.json").read_text())["url"] == new
    first.stop()  # another user is left: the new server keeps running
    assert _answers(new)
    again.stop()
    assert not _answers(new)


def test_waiting_for_another_starter_is_bounded(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    fd = os.open(tmp_path / "redis" / "start.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another process is starting the server, and hangs
        with pytest.raises(StoreError, match="another feedwatch process held it"):
            EmbeddedRedis(tmp_path).start(timeout=0.2)
    finally:
        os.close(fd)
    server = EmbeddedRedis(tmp_path)
    server.start()  # the lock released, the next start goes ahead
    server.stop()
