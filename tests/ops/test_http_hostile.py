"""A hostile client against the HTTP endpoint (daemon/ops/http.py), with the exact bytes that
got through before: each malformed head is a 400 and the connection closed, no ERROR is
logged, and /healthz still answers afterwards; idle, slow and never-reading clients are cut
within bounds; a body to an unknown callback token is never read."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from daemon.ops.http import HttpServer, Prefix, Request, Response
from daemon.ops.httpwire import bounded_int, check_head, printable
from tests.support.rawhttp import exchange

HANDLED: list[Request] = []


class Refusals(list[str]):
    """What the server refused, and an event for the next refusal."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def append(self, reason: str) -> None:
        super().append(reason)
        self.changed.set()


async def _ok() -> Response:
    return Response(200, b"ok\n")


async def _big() -> Response:
    return Response(200, b"x" * (32 * 1024 * 1024))


async def _check(request: Request) -> Response | None:
    return None if request.path == "/websub/good" else Response(410, b"gone\n")


async def _handle(request: Request) -> Response:
    HANDLED.append(request)
    return Response(202, b"accepted\n")


@pytest.fixture
async def server() -> AsyncIterator[tuple[HttpServer, Refusals]]:
    HANDLED.clear()
    refused = Refusals()
    routes = {"/healthz": _ok, "/metrics": _ok, "/big": _big}
    async with HttpServer(
        "127.0.0.1",
        0,
        routes,
        handlers={"/websub/": Prefix(_handle, _check)},
        max_body=1024 * 1024,
        max_connections=4,
        idle_timeout=5,
        body_timeout=0.5,
        write_timeout=0.5,
        on_refuse=refused.append,
    ) as srv:
        yield srv, refused


async def _healthy(srv: HttpServer) -> bool:
    answer = await exchange(srv, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return answer.startswith(b"HTTP/1.1 200 ")


MALFORMED = {
    # X: a<LF>Content-Length: 34 would frame a hidden "GET /metrics" as a body, or not
    "bare LF (smuggling)": b"POST /websub/good HTTP/1.1\r\nHost: x\r\nX: a\nContent-Length: 34"
    b"\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    "bare CR": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
    "obs-fold": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",
    "space before colon": b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n",
    "whitespace-led first header": b"GET /healthz HTTP/1.1\r\n Host: x\r\n\r\n",
    "nbsp around a value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: \xa0a\xa0\r\n\r\n",
    "NEL in a value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: \x85a\r\n\r\n",
    "VT in a value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: \x0ba\r\n\r\n",
    "5,000-digit Content-Length": b"POST /websub/good HTTP/1.1\r\nHost: x\r\nContent-Length: "
    + b"9" * 5000
    + b"\r\n\r\n",
    "Content-Length and chunked": b"POST /websub/good HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    "two Content-Lengths": b"POST /websub/good HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
    b"Content-Length: 4\r\n\r\nabcd",
    "no Host in HTTP/1.1": b"GET /healthz HTTP/1.1\r\n\r\n",
    "space in the target": b"GET /health z HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.parametrize("raw", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_heads_get_400_and_close(
    server: tuple[HttpServer, Refusals], raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    srv, refused = server
    with caplog.at_level(logging.DEBUG):
        answer = await exchange(srv, raw)
    assert answer.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in answer
    assert answer.count(b"HTTP/1.1") == 1  # nothing hidden was answered
    assert HANDLED == [] and refused == ["malformed"]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert await _healthy(srv)


def test_the_strict_checks_accept_ordinary_requests() -> None:
    assert check_head(b"GET /healthz?x=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n") is None
    assert check_head(b"POST /websub/a HTTP/1.0\r\nContent-Length: 12\r\nX:\r\n\r\n") is None
    chunked = b"POST /w HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert check_head(chunked) is None
    gzip = b"POST /w HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    assert check_head(gzip) == 501


def test_numbers_and_log_text_are_bounded() -> None:
    assert bounded_int("86400") == 86400
    assert bounded_int("9" * 400) is None and bounded_int("-1") is None
    assert bounded_int("１２") is None  # not ASCII digits
    assert printable("a\x1b[31mred\r\nb") == "a\\x1b[31mred\\r\\nb"
    assert printable("x" * 500, 10) == "x" * 10 + "…"


async def test_unknown_token_is_refused_before_the_body(
    server: tuple[HttpServer, Refusals],
) -> None:
    """A 10 MB body announced to an unknown token: 410 at once, not a byte of it read."""
    srv, _ = server
    head = b"POST /websub/unknown HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n"
    answer = await exchange(srv, head)  # the body is never sent
    assert answer.startswith(b"HTTP/1.1 410 ") and HANDLED == []
    big = b"POST /websub/good HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n"
    assert (await exchange(srv, big)).startswith(b"HTTP/1.1 413 ")


async def test_a_stalled_body_is_cut_at_the_body_timeout(
    server: tuple[HttpServer, Refusals],
) -> None:
    srv, refused = server
    head = b"POST /websub/good HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"
    assert await exchange(srv, head) == b""  # closed without an answer
    assert refused == ["body_timeout"] and HANDLED == []


async def test_idle_clients_give_their_slots_to_new_ones(
    server: tuple[HttpServer, Refusals],
) -> None:
    """Eight connections that never send a byte (each taking the slot of an earlier one as it
    comes): new requests are still answered, each taking the slot of the longest-silent one,
    and no connection is turned away."""
    srv, refused = server
    idle = [await asyncio.open_connection(*srv.address) for _ in range(8)]
    try:
        for _ in range(3):
            assert await _healthy(srv)
        other = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        assert (await exchange(srv, other)).startswith(b"HTTP/1.1 200 ")
        assert "evicted" in refused and "connections" not in refused and "busy" not in refused
    finally:
        for _, writer in idle:
            writer.close()


async def test_over_the_limit_only_health_probes_are_answered() -> None:
    """With every regular slot taken by clients that are not silent (none here), a health probe
    is answered from the overflow, anything else gets 503 with Retry-After; with the overflow
    full too, connections are closed unanswered. Each refusal is counted."""
    refused = Refusals()
    routes = {"/healthz": _ok, "/metrics": _ok}
    async with HttpServer(
        "127.0.0.1", 0, routes, max_connections=0, max_overflow=2, on_refuse=refused.append
    ) as srv:
        for _ in range(3):
            assert await _healthy(srv)
        busy = await exchange(srv, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert busy.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1" in busy
    async with HttpServer(
        "127.0.0.1", 0, routes, max_connections=0, max_overflow=0, on_refuse=refused.append
    ) as full:
        try:
            assert await exchange(full, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n") == b""
        except ConnectionResetError:
            pass  # closed with our request unread
    assert refused == ["busy", "connections"]


async def test_a_client_that_never_reads_is_cut_at_the_write_timeout(
    server: tuple[HttpServer, Refusals],
) -> None:
    srv, refused = server
    reader, writer = await asyncio.open_connection(*srv.address)
    writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await asyncio.wait_for(refused.changed.wait(), 30)  # its write timeout is 0.5 s
    assert refused == ["write_timeout"]
    writer.close()
    assert await _healthy(srv)
