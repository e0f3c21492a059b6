"""``daemon.ops.http`` prefix handlers (the WebSub callback): whole requests with bounded bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from daemon.ops.http import HttpServer, Request, Response
from tests.support.rawhttp import exchange

SEEN: list[Request] = []


async def _echo(req: Request) -> Response:
    SEEN.append(req)
    return Response(200, f"{req.method} {req.path} {req.query} {len(req.body)}".encode())


async def _broken(req: Request) -> Response:
    raise RuntimeError("bug")


async def _hello() -> Response:
    return Response(200, b"hello\n")


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    SEEN.clear()
    handlers = {"/hook/": _echo, "/bad/": _broken}
    async with HttpServer(
        "127.0.0.1", 0, {"/hello": _hello}, handlers=handlers, max_body=1000, idle_timeout=2
    ) as srv:
        yield srv


async def test_handler_sees_method_path_query_headers_body(server: HttpServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        r = await client.post("/hook/abc?x=1&y=2", content=b"hello", headers={"X-A": "1"})
        assert (r.status_code, r.text) == (200, "POST /hook/abc x=1&y=2 5")
        g = await client.get("/hook/abc?hub.mode=subscribe")
        assert g.text == "GET /hook/abc hub.mode=subscribe 0"
        assert (await client.get("/bad/x")).status_code == 500
        # Other paths are unchanged: GET/HEAD only.
        assert (await client.post("/hello", content=b"x")).status_code == 405
    assert SEEN[0].headers["x-a"] == "1" and SEEN[0].body == b"hello"


async def test_chunked_body_and_keep_alive(server: HttpServer) -> None:
    chunked = (
        b"POST /hook/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    close = b"POST /hook/d HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
    data = await exchange(server, chunked + close)
    assert data.count(b"200 OK") == 2
    assert [r.body for r in SEEN] == [b"hello world", b"abc"]


async def test_bodies_over_the_limit_are_refused(server: HttpServer) -> None:
    big = b"POST /hook/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n" + b"a" * 1001
    assert (await exchange(server, big)).startswith(b"HTTP/1.1 413 ")
    chunks = b"".join(b"1f4\r\n" + b"a" * 500 + b"\r\n" for _ in range(3))
    big_chunked = b"POST /hook/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    assert (await exchange(server, big_chunked)).startswith(b"HTTP/1.1 413 ")
    bad_size = b"POST /hook/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    assert (await exchange(server, bad_size)).startswith(b"HTTP/1.1 400 ")
    both = (
        b"POST /hook/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 3\r\n\r\n"
    )
    assert (await exchange(server, both)).startswith(b"HTTP/1.1 400 ")
    gzip_te = b"POST /hook/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
    assert (await exchange(server, gzip_te)).startswith(b"HTTP/1.1 501 ")
    assert SEEN == []
