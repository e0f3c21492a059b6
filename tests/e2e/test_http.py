"""The health and metrics endpoint: the tiny HTTP server, readiness, and the real daemon."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from daemon.config.load import config_from_dict
from daemon.ops.http import HttpServer, Response, endpoints
from daemon.runtime import Daemon
from tests.e2e.conftest import RULE_FILE, Feedwatch, reap, terminate
from tests.e2e.test_lifecycle import Lines
from tests.support.feeds import Entry, rss
from tests.support.httpserver import FeedServer
from tests.support.rawhttp import exchange

NOW = datetime.now(UTC)


# -- the server -----------------------------------------------------------------------------


async def _hello() -> Response:
    return Response(200, b"hello\n")


async def _broken() -> Response:
    raise RuntimeError("bug")


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    routes = {"/hello": _hello, "/broken": _broken}
    async with HttpServer("127.0.0.1", 0, routes, max_request=1024, idle_timeout=0.5) as srv:
        yield srv


async def test_routes_status_codes(server: HttpServer) -> None:
    """Known path 200, unknown 404, POST 405, a failing route 500; the query is ignored."""
    async with httpx.AsyncClient(base_url=server.url) as client:
        ok = await client.get("/hello?x=1")
        assert (ok.status_code, ok.text) == (200, "hello\n")
        assert ok.headers["content-length"] == "6"
        assert (await client.get("/nope")).status_code == 404
        assert (await client.post("/hello")).status_code == 405
        assert (await client.get("/broken")).status_code == 500
        head = await client.head("/hello")
        assert head.status_code == 200 and head.content == b""


async def test_keep_alive_then_idle_connection_is_closed(server: HttpServer) -> None:
    """Two requests on one connection, then the server closes it once idle."""
    reader, writer = await asyncio.open_connection(*server.address)
    request = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
    writer.write(request + request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)  # returns at EOF: the idle close
    writer.close()
    assert data.count(b"HTTP/1.1 200 OK") == 2 and data.count(b"hello\n") == 2


async def test_connection_close_and_http_1_0(server: HttpServer) -> None:
    """`Connection: close` and HTTP/1.0 get one answer, then the connection is closed."""
    close = b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    closed = await exchange(server, close)
    assert closed.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in closed
    old = await exchange(server, b"GET /hello HTTP/1.0\r\n\r\n")
    assert old.startswith(b"HTTP/1.1 200 OK") and old.endswith(b"hello\n")


async def test_oversized_and_malformed_requests(server: HttpServer) -> None:
    """A head over the limit gets 431, a big body 413, garbage 400; each closes."""
    big = b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 4096 + b"\r\n\r\n"
    assert (await exchange(server, big)).startswith(b"HTTP/1.1 431 ")
    body = b"GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
    assert (await exchange(server, body)).startswith(b"HTTP/1.1 413 ")
    assert (await exchange(server, b"HELLO\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
    gzip = b"GET /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
    assert (await exchange(server, gzip)).startswith(b"HTTP/1.1 501 ")
    chunked = (
        b"GET /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    assert (await exchange(server, chunked)).startswith(b"HTTP/1.1 200 ")  # body ignored


async def test_slow_request_head_is_cut_off(server: HttpServer) -> None:
    """A client that starts a request and never finishes it is disconnected (idle timeout)."""
    assert await exchange(server, b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow:") == b""


async def test_connection_limit() -> None:
    """A kept-alive client that sends nothing more gives its slot to a new connection."""
    refused: list[str] = []
    async with HttpServer(
        "127.0.0.1", 0, {"/hello": _hello}, max_connections=1, on_refuse=refused.append
    ) as srv:
        first = await asyncio.open_connection(*srv.address)
        first[1].write(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")  # held open (keep-alive)
        assert b"200 OK" in await first[0].readuntil(b"hello\n")
        close = b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        assert (await exchange(srv, close)).startswith(b"HTTP/1.1 200 ")
        assert await asyncio.wait_for(first[0].read(), 10) == b""  # the first was closed
        first[1].close()
    assert refused == ["evicted"]


async def test_close_does_not_wait_for_idle_clients() -> None:
    """aclose() returns while a client still holds a kept-alive connection."""
    srv = HttpServer("127.0.0.1", 0, {"/hello": _hello}, idle_timeout=300)
    await srv.start()
    reader, writer = await asyncio.open_connection(*srv.address)
    writer.write(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    await reader.readuntil(b"hello\n")
    await asyncio.wait_for(srv.aclose(), 10)
    assert await asyncio.wait_for(reader.read(), 10) == b""  # the server closed it
    writer.close()


async def test_readyz_names_what_is_not_ready() -> None:
    """/readyz is 503 with the failing checks while one fails, 200 when all hold."""
    state = {"redis": True, "scheduler": False}

    async def ready() -> dict[str, bool]:
        return dict(state)

    routes = endpoints(ready=ready, metrics=lambda: b"m 1\n", metrics_type="text/plain")
    async with (
        HttpServer("127.0.0.1", 0, routes) as srv,
        httpx.AsyncClient(base_url=srv.url) as client,
    ):
        down = await client.get("/readyz")
        assert down.status_code == 503
        assert down.json() == {"ready": False, "checks": state, "failing": ["scheduler"]}
        state["scheduler"] = True
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get("/healthz")).json()["status"] == "ok"
        assert (await client.get("/metrics")).text == "m 1\n"


async def test_daemon_is_not_ready_before_it_runs(redis_url: str, tmp_path: Path) -> None:
    """An opened Daemon whose scheduler and consumer have not started is not ready."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULE_FILE)
    config = config_from_dict(
        {
            "redis": redis_url,
            "rules": ["rules"],
            "polling": {"parse_workers": 1},
            "http": {"listen": "127.0.0.1:0"},
        },
        base_dir=tmp_path,
    )
    async with Daemon(config) as daemon:
        checks = await daemon.readiness()
    assert checks == {"redis": True, "rules": True, "scheduler": False, "consumer": False}


# -- the real daemon ------------------------------------------------------------------------


def _port_of(line: str) -> int:
    m = re.search(r"\bhttp=127\.0\.0\.1:(\d+)\b", line)
    assert m, line
    return int(m.group(1))


def test_daemon_serves_health_readiness_and_metrics(fw: Feedwatch, feed_server: FeedServer) -> None:
    """`feedwatch run` with `http: {listen: 127.0.0.1:0}`: the endpoints answer, metrics count
    the poll, the delivery and the publication→delivery time of the alert."""
    published = NOW - timedelta(minutes=5)
    feed_server.set("/n.xml", rss([Entry("k1", "Shelling in Kursk", "Border.", published)]))
    fw.add_feed("n", feed_server.url("/n.xml"), interval="1h")
    fw.config["http"] = {"listen": "127.0.0.1:0"}
    proc = fw.popen("run")
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        port = _port_of(err.lines[err.wait_for(" started ", timeout=60)])
        base = f"http://127.0.0.1:{port}"
        health = httpx.get(f"{base}/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        ready = httpx.get(f"{base}/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {
            "redis": True, "rules": True, "scheduler": True, "consumer": True,
        }  # fmt: skip
        out.wait_for('"rule_id": "kursk"', timeout=60)
        err.wait_for("delivered ", timeout=30)
        text = httpx.get(f"{base}/metrics").text
        assert 'feedwatch_polls_total{feed="n",outcome="ok"} 1.0' in text
        assert 'feedwatch_alerts_delivered_total{notifier="out"} 1.0' in text
        assert 'feedwatch_alerts_total{rule="kursk"} 1.0' in text
        assert 'feedwatch_publication_to_delivery_seconds_count{feed="n"} 1.0' in text
        assert 'feedwatch_publication_to_delivery_seconds_bucket{feed="n",le="60.0"} 0.0' in text
        assert 'feedwatch_publication_to_delivery_seconds_bucket{feed="n",le="600.0"} 1.0' in text
        assert "feedwatch_rules_loaded 2.0" in text
        assert httpx.get(f"{base}/nothing").status_code == 404
        terminate(proc)
    finally:
        reap(proc)
    assert proc.returncode == 0
    with pytest.raises(httpx.ConnectError):  # closed with the daemon
        httpx.get(f"{base}/healthz")


def test_port_in_use_stops_the_daemon_with_a_problem(fw: Feedwatch) -> None:
    """A listen address that is taken is reported like a config problem; exit 1, no polling."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        fw.config["http"] = {"listen": f"127.0.0.1:{taken.getsockname()[1]}"}
        run = fw.run("run", timeout=60)
    assert run.code == 1
    assert "http.listen: cannot listen on 127.0.0.1:" in run.stderr
    assert " started " not in run.stderr


def test_health_listen_serves_only_the_probes(fw: Feedwatch) -> None:
    """`http.health_listen`: a second listener with /healthz and /readyz alone, so probes never
    wait behind the callbacks' connection limit."""
    fw.config["http"] = {"listen": "127.0.0.1:0", "health_listen": "127.0.0.1:0"}
    proc = fw.popen("run")
    err = Lines(proc.stderr)
    try:
        line = err.lines[err.wait_for("health_listen ", timeout=60)]
        match = re.search(r"address=127\.0\.0\.1:(\d+)", line)
        assert match, line
        base = f"http://127.0.0.1:{match.group(1)}"
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert httpx.get(f"{base}/readyz").status_code in (200, 503)
        assert httpx.get(f"{base}/metrics").status_code == 404
        terminate(proc)
    finally:
        reap(proc)
    assert proc.returncode == 0
