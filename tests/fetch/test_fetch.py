"""Fetcher against a real HTTP server on 127.0.0.1 (tests.support.httpserver.FeedServer)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import socket
import threading
import time
import tracemalloc
import zlib
from email.utils import formatdate
from typing import Any

import httpx
import pytest

from daemon.errors import FetchError
from daemon.fetch.client import (
    ACCEPT,
    Fetcher,
    FetchSettings,
    parse_max_age,
    parse_retry_after,
    scrub,
)
from daemon.types import Caching, FetchResult
from tests.support.httpserver import FeedServer, Request, Response

RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"


async def fetch(url: str, caching: Caching | None = None, **settings: Any) -> FetchResult:
    async with Fetcher(FetchSettings(**settings)) as f:
        return await f.fetch("feed", url, caching)


async def fetch_error(url: str, **settings: Any) -> FetchError:
    with pytest.raises(FetchError) as info:
        await fetch(url, **settings)
    return info.value


async def test_etag_gives_304_on_second_fetch(feed_server: FeedServer) -> None:
    """A stored ETag is sent as If-None-Match and a 304 keeps the old body hash."""
    feed_server.set("/f", RSS, etag='"v1"')
    async with Fetcher() as f:
        first = await f.fetch("feed", feed_server.url("/f"))
        second = await f.fetch("feed", feed_server.url("/f"), first.caching)
    assert (first.status, first.not_modified, first.body) == (200, False, RSS)
    assert first.caching == Caching('"v1"', None, hashlib.sha256(RSS).hexdigest())
    assert (second.status, second.not_modified, second.body) == (304, True, b"")
    assert second.caching == first.caching
    assert feed_server.requests[-1].headers["if-none-match"] == '"v1"'


async def test_last_modified_gives_304(feed_server: FeedServer) -> None:
    """A stored Last-Modified is sent as If-Modified-Since and answered with 304."""
    feed_server.set("/f", RSS, last_modified=LAST_MODIFIED)
    async with Fetcher() as f:
        first = await f.fetch("feed", feed_server.url("/f"))
        second = await f.fetch("feed", feed_server.url("/f"), first.caching)
    assert first.caching.last_modified == LAST_MODIFIED
    assert second.not_modified
    assert feed_server.requests[-1].headers["if-modified-since"] == LAST_MODIFIED


async def test_304_updates_validators(feed_server: FeedServer) -> None:
    """New validators on a 304 replace the old ones; the body hash is kept."""
    feed_server.set_handler("/f", lambda req: Response(304, headers={"ETag": '"v2"'}))
    old = Caching('"v1"', LAST_MODIFIED, "abc")
    result = await fetch(feed_server.url("/f"), old)
    assert result.caching == Caching('"v2"', LAST_MODIFIED, "abc")


async def test_no_conditional_headers_without_caching(feed_server: FeedServer) -> None:
    """A first fetch sends no If-None-Match / If-Modified-Since."""
    feed_server.set("/f", RSS, etag='"v1"')
    await fetch(feed_server.url("/f"))
    headers = feed_server.requests[0].headers
    assert ("if-none-match" in headers, "if-modified-since" in headers) == (False, False)


async def test_200_result_fields(feed_server: FeedServer) -> None:
    """A 200 gives body, lower-cased headers, max-age and a stable SHA-256 body hash."""
    feed_server.set("/f", RSS, headers={"Cache-Control": "public, max-age=600", "X-Thing": "1"})
    async with Fetcher() as f:
        a = await f.fetch("feed", feed_server.url("/f"))
        b = await f.fetch("feed", feed_server.url("/f"))
    assert a.body == RSS
    assert a.caching.body_hash == b.caching.body_hash == hashlib.sha256(RSS).hexdigest()
    assert a.headers["x-thing"] == "1"
    assert a.headers["content-type"].startswith("application/rss+xml")
    assert a.max_age == 600.0
    assert a.url == feed_server.url("/f")


@pytest.mark.parametrize(
    ("status", "message"),
    [(404, "HTTP 404 Not Found"), (410, "HTTP 410 Gone"), (500, "HTTP 500 Internal Server Error")],
)
async def test_http_errors(feed_server: FeedServer, status: int, message: str) -> None:
    """Status >= 400 raises FetchError(kind=http) with the status and a short message."""
    feed_server.fail("/f", status)
    err = await fetch_error(feed_server.url("/f"))
    assert (err.kind, err.status, err.message, err.retry_after) == ("http", status, message, None)


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_seconds(feed_server: FeedServer, status: int) -> None:
    """429 and 503 carry Retry-After delta-seconds as retry_after."""
    feed_server.fail("/f", status, retry_after="120")
    err = await fetch_error(feed_server.url("/f"))
    assert (err.kind, err.status, err.retry_after) == ("http", status, 120.0)
    assert "retry after 120s" in err.message


async def test_retry_after_http_date(feed_server: FeedServer) -> None:
    """A Retry-After HTTP-date becomes seconds from now."""
    feed_server.fail("/f", 429, retry_after=formatdate(time.time() + 3600, usegmt=True))
    err = await fetch_error(feed_server.url("/f"))
    assert err.retry_after is not None
    assert 3000 < err.retry_after <= 3600


async def test_retry_after_past_date_clamped(feed_server: FeedServer) -> None:
    """A Retry-After date in the past clamps to 0."""
    feed_server.fail("/f", 503, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
    err = await fetch_error(feed_server.url("/f"))
    assert err.retry_after == 0.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Thu, 01 Jan 1970 00:02:00 GMT", 60.0),
        ("Thu, 01 Jan 1970 00:00:30 GMT", 0.0),
        ("-5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Retry-After parses delta-seconds and HTTP-dates relative to an injected now."""
    assert parse_retry_after(value, now=60.0) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("max-age=60", 60.0), ("no-cache, MAX-AGE=5", 5.0), ("max-age=x", None), (None, None)],
)
def test_parse_max_age(value: str | None, expected: float | None) -> None:
    """max-age is read from Cache-Control, case-insensitively."""
    assert parse_max_age(value) == expected


async def test_redirect_followed(feed_server: FeedServer) -> None:
    """Redirects are followed and the final URL is reported."""
    feed_server.redirect("/old", "/new", status=301)
    feed_server.set("/new", RSS)
    result = await fetch(feed_server.url("/old"))
    assert (result.body, result.url) == (RSS, feed_server.url("/new"))


async def test_redirect_loop(feed_server: FeedServer) -> None:
    """A redirect loop stops after max_redirects with kind=redirects."""
    feed_server.redirect("/a", "/b")
    feed_server.redirect("/b", "/a")
    err = await fetch_error(feed_server.url("/a"), max_redirects=3)
    assert (err.kind, err.message) == ("redirects", "more than 3 redirects")
    assert feed_server.hits("/a") + feed_server.hits("/b") == 4


@pytest.mark.parametrize("chunked", [False, True])
async def test_body_over_cap(feed_server: FeedServer, chunked: bool) -> None:
    """A body over max_bytes raises too_large, with or without Content-Length."""
    feed_server.set("/big", b"x" * 5000, chunked=chunked)
    err = await fetch_error(feed_server.url("/big"), max_bytes=4096)
    assert (err.kind, err.message) == ("too_large", "body over 4096 bytes cap")


async def test_body_at_cap_is_fine(feed_server: FeedServer) -> None:
    """A chunked body of exactly max_bytes is accepted."""
    feed_server.set("/big", b"x" * 4096, chunked=True)
    result = await fetch(feed_server.url("/big"), max_bytes=4096)
    assert result.body == b"x" * 4096


async def test_gzip_bomb(feed_server: FeedServer) -> None:
    """50 MB of gzipped zeros with a 1 MiB cap is refused without inflating it all."""
    feed_server.gzip_bomb("/bomb", 50 * 10**6)
    tracemalloc.start()
    try:
        err = await fetch_error(feed_server.url("/bomb"), max_bytes=2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (err.kind, err.message) == ("too_large", "body over 1 MiB cap")
    assert peak < 8 * 2**20


async def test_gzip_body_decoded(feed_server: FeedServer) -> None:
    """A gzip body is decoded and hashed decoded."""
    feed_server.set("/f", RSS, gzip=True)
    result = await fetch(feed_server.url("/f"))
    assert result.body == RSS
    assert result.caching.body_hash == hashlib.sha256(RSS).hexdigest()
    assert "gzip" in feed_server.requests[0].headers["accept-encoding"]


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS])
async def test_deflate_body_decoded(feed_server: FeedServer, wbits: int) -> None:
    """Content-Encoding: deflate is decoded, zlib-wrapped or raw."""
    comp = zlib.compressobj(6, zlib.DEFLATED, wbits)
    payload = comp.compress(RSS) + comp.flush()
    feed_server.set("/f", payload, headers={"Content-Encoding": "deflate"})
    result = await fetch(feed_server.url("/f"))
    assert result.body == RSS


async def test_bad_gzip(feed_server: FeedServer) -> None:
    """A body that claims gzip but is not raises kind=decode."""
    feed_server.set("/f", b"this is not gzip at all", headers={"Content-Encoding": "gzip"})
    err = await fetch_error(feed_server.url("/f"))
    assert err.kind == "decode"


async def test_unknown_encoding(feed_server: FeedServer) -> None:
    """An encoding we did not ask for raises kind=decode."""
    feed_server.set("/f", gzip.compress(RSS), headers={"Content-Encoding": "br"})
    err = await fetch_error(feed_server.url("/f"))
    assert (err.kind, err.message) == ("decode", "unsupported Content-Encoding 'br'")


async def test_slow_drip_hits_deadline(feed_server: FeedServer) -> None:
    """A server dripping bytes runs into the total deadline (kind=deadline)."""
    feed_server.slow("/drip", b"x" * 1000, chunk=1, interval=0.05)
    err = await fetch_error(feed_server.url("/drip"), deadline=0.5)
    assert (err.kind, err.message) == ("deadline", "no complete answer within 0.5s deadline")


async def test_closed_connection(feed_server: FeedServer) -> None:
    """A connection closed without a response raises kind=transport."""
    feed_server.close_connection("/f")
    err = await fetch_error(feed_server.url("/f"))
    assert err.kind == "transport"
    assert feed_server.hits("/f") == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_port() -> None:
    """Nothing listening raises kind=connect."""
    err = await fetch_error(f"http://127.0.0.1:{_free_port()}/f")
    assert err.kind == "connect"
    assert err.message.startswith("could not connect to 127.0.0.1")


class _NoDNS(httpx.AsyncBaseTransport):
    """Fails like httpx does when getaddrinfo fails (a real lookup would send traffic out)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        except socket.gaierror as e:
            raise httpx.ConnectError(str(e), request=request) from e


async def test_dns_failure() -> None:
    """A name that does not resolve raises kind=dns (resolution simulated by a transport)."""
    async with Fetcher(transport=_NoDNS()) as f:
        with pytest.raises(FetchError) as info:
            await f.fetch("feed", "http://nonexistent.invalid/feed?token=SECRET")
    assert (info.value.kind, info.value.message) == (
        "dns",
        "could not resolve host nonexistent.invalid",
    )


async def test_unsupported_scheme() -> None:
    """A non-http URL is refused before any I/O."""
    err = await fetch_error("ftp://user:pw@example.org/feed?token=SECRET")
    assert (err.kind, err.message) == ("transport", "not an http(s) URL: ftp://example.org/feed")


async def test_request_headers(feed_server: FeedServer) -> None:
    """User-Agent and Accept identify us and ask for feeds."""
    feed_server.set("/f", RSS)
    await fetch(feed_server.url("/f"), user_agent="feedwatch-test/1")
    headers = feed_server.requests[0].headers
    assert (headers["user-agent"], headers["accept"]) == ("feedwatch-test/1", ACCEPT)
    default = FetchSettings().user_agent
    assert default.startswith("feedwatch/")


@pytest.mark.parametrize("case", ["http", "closed", "connect", "deadline", "redirects"])
async def test_messages_hide_secrets(feed_server: FeedServer, case: str) -> None:
    """Error messages never contain the query string or userinfo of the URL."""
    feed_server.fail("/http", 404)
    feed_server.close_connection("/closed")
    feed_server.slow("/deadline", b"x" * 100, interval=0.05)
    feed_server.redirect("/redirects", "/redirects?token=SECRET")
    base = f"http://127.0.0.1:{_free_port()}" if case == "connect" else feed_server.base_url
    url = base.replace("://", "://alice:hunter2@") + f"/{case}?token=SECRET"
    err = await fetch_error(url, deadline=0.3)
    for text in (err.message, str(err)):
        assert "SECRET" not in text and "hunter2" not in text and "alice" not in text


def test_scrub() -> None:
    """scrub() keeps scheme://host/path of URLs inside text."""
    text = "failed for 'https://u:p@h.example/a/b?token=X#f' and http://h2/c?k=v."
    assert scrub(text) == "failed for 'https://h.example/a/b' and http://h2/c"


@pytest.mark.parametrize(
    ("settings", "cap"),
    [({"per_host": 2, "concurrency": 32}, 2), ({"per_host": 8, "concurrency": 3}, 3)],
)
async def test_concurrency_caps(
    feed_server: FeedServer, settings: dict[str, Any], cap: int
) -> None:
    """No more than per_host / concurrency requests reach one host at once."""
    release = threading.Semaphore(0)

    def blocking(req: Request) -> Response:
        assert release.acquire(timeout=10)
        return Response(200, RSS)

    feed_server.set_handler("/block", blocking)
    n = 7
    async with Fetcher(FetchSettings(clients=1, pool_per_client=16, **settings)) as f:
        tasks = [asyncio.create_task(f.fetch("feed", feed_server.url("/block"))) for _ in range(n)]
        try:
            for released in range(n):
                want_hits, want_in_flight = min(n, released + cap), min(cap, n - released)

                def ready(h: int = want_hits, i: int = want_in_flight) -> bool:
                    return feed_server.hits("/block") == h and feed_server.in_flight("/block") == i

                assert await asyncio.to_thread(feed_server.wait_until, ready), (
                    f"expected {want_in_flight} in flight after {released} released, "
                    f"saw {feed_server.in_flight('/block')} (hits {feed_server.hits('/block')})"
                )
                release.release()
            results = await asyncio.gather(*tasks)
        finally:
            for _ in range(n):
                release.release()
    assert [r.status for r in results] == [200] * n
    assert feed_server.max_concurrent("/block") == cap
    assert f._hosts == {}


async def test_connection_reused(feed_server: FeedServer) -> None:
    """Fetches of one host go through the same client and reuse its kept-alive connection."""
    feed_server.set("/f", RSS)
    async with Fetcher() as f:
        for _ in range(3):
            await f.fetch("feed", feed_server.url("/f"))
    assert len({r.peer for r in feed_server.requests}) == 1


def test_server_stop_with_drip_in_progress() -> None:
    """FeedServer.stop() returns while a drip is mid-body and the port stops answering."""
    server = FeedServer().start()
    server.slow("/drip", b"x" * 100, interval=30.0)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /drip HTTP/1.1\r\nHost: x\r\n\r\n")
        assert server.wait_in_flight("/drip", 1)
        server.stop()
        sock.settimeout(5)
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200") and received.endswith(b"\r\n\r\nx")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


def test_server_basics(feed_server: FeedServer) -> None:
    """Unknown paths 404; a handler returning None closes; a raising handler answers 500."""

    def boom(req: Request) -> Response:
        raise ValueError("boom")

    feed_server.set_handler("/none", lambda req: None)
    feed_server.set_handler("/boom", boom)
    with httpx.Client(base_url=feed_server.base_url) as client:
        assert client.get("/nope").status_code == 404
        assert client.get("/boom").status_code == 500
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/none?x=1")
    assert [type(e) for e in feed_server.errors] == [ValueError]
    assert (feed_server.hits("/none"), feed_server.hits("/none?x=1")) == (1, 1)
    assert feed_server.requests[-1].query == "x=1"
