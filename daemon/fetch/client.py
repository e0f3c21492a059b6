"""Fetch feeds over HTTP: conditional GET, bounded bodies, one total deadline, typed errors.

``Fetcher.fetch(feed, url, caching)`` returns a ``FetchResult`` (a 304 is a result with
``not_modified=True``, not an error) or raises ``FetchError`` whose ``kind`` says what went wrong:
``dns``, ``connect``, ``timeout``, ``deadline``, ``http`` (with ``status``; 429/503 also carry
``retry_after`` seconds), ``too_large``, ``redirects``, ``transport`` or ``decode``.

Design notes:

* **Sharded clients.** The issue asks for "one shared AsyncClient"; we deviate for a measured
  reason (DESIGN.md, facts measured on this machine). One ``httpx.AsyncClient`` with a 50-100
  connection pool is pathological: httpcore scans the whole pool for every request, so it managed
  ~270 requests/s (encode/httpx#3215, encode/httpcore#1035). Ten clients of five connections
  reached ~1,400 responses/s. So we keep ``clients`` small clients, each with
  ``pool_per_client`` connections, and pick one by a stable hash (CRC-32) of the host: a host
  always lands on the same client, so its keep-alive connections get reused.
* **Concurrency.** A global ``asyncio.Semaphore(concurrency)`` bounds fetches in flight and a
  per-host semaphore (``per_host``) keeps us polite. The per-host slot is taken first, so a task
  waiting for a busy host does not hold a global slot. Host semaphores are created lazily and
  dropped when no task uses them, so the dict holds only hosts with fetches in flight or waiting.
* **One total deadline.** httpx timeouts are per operation (a server dripping one byte a second
  never trips a read timeout), so the whole request (connect, headers, body) runs under
  ``asyncio.timeout(deadline)``. Waiting for a semaphore slot does not count against it.
* **Bounded bodies.** We read the raw stream and inflate gzip/deflate ourselves with
  ``zlib.decompressobj(...).decompress(data, max_length)``: httpx would inflate each network chunk
  in one go, and 64 KiB of a gzip bomb inflates to ~64 MiB. Counting decoded bytes in small steps
  aborts with ``too_large`` as soon as ``max_bytes`` is passed; a Content-Length above the cap is
  refused before reading anything.
* **No secrets in messages.** Feed URLs may carry tokens in the query string or userinfo. Error
  messages mention at most scheme://host/path and text from httpx is scrubbed the same way. The
  ``httpx`` and ``httpcore`` loggers (which log full request URLs at INFO) are set to WARNING.
* ``FetchResult.url`` is the final URL after redirects; ``caching.body_hash`` is the SHA-256 of the
  decoded body, which the pipeline compares with the stored one to skip parsing unchanged bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import socket
import time
import zlib
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from types import TracebackType

import httpx

from daemon import __version__
from daemon.errors import FetchError
from daemon.types import Caching, FetchResult

logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, "
    "application/xml;q=0.9, */*;q=0.8"
)
_DNS_TEXTS = ("name or service not known", "nodename nor servname", "name resolution")
_STEP = 64 * 1024  # most decoded bytes produced per zlib call
_URL_RE = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?:[^/\s?#@]*@)?(?P<rest>[^\s?#'\"]*)"
    r"(?:[?#][^\s'\"]*)?"
)


@dataclass(frozen=True, slots=True)
class FetchSettings:
    """Limits and identity for fetching. ``max_bytes`` caps the *decoded* body."""

    deadline: float = 30.0
    connect_timeout: float = 10.0
    max_bytes: int = 10 * 2**20
    max_redirects: int = 5
    user_agent: str = f"feedwatch/{__version__} (+https://github.com/feedwatch/feedwatch)"
    concurrency: int = 32
    per_host: int = 4
    clients: int = 8
    pool_per_client: int = 8


def safe_url(url: str | httpx.URL) -> str:
    """``scheme://host[:port]/path`` only: no userinfo, query or fragment (they may be secrets)."""
    try:
        u = url if isinstance(url, httpx.URL) else httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return scrub(str(url))
    port = f":{u.port}" if u.port is not None else ""
    return f"{u.scheme}://{u.host}{port}{u.path}"


def scrub(text: str) -> str:
    """Strip userinfo, query and fragment from every URL-looking part of ``text``."""
    return _URL_RE.sub(lambda m: m["scheme"] + m["rest"], text)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), clamped to >= 0."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if _is_int(value):
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": still GMT for an HTTP-date
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def parse_max_age(cache_control: str | None) -> float | None:
    """``max-age`` seconds from a Cache-Control header, else None."""
    for directive in (cache_control or "").split(","):
        name, _, arg = directive.strip().partition("=")
        if name.strip().lower() == "max-age":
            arg = arg.strip().strip('"')
            return float(int(arg)) if _is_int(arg) else None
    return None


def _is_int(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _mib(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n} bytes"


class _Inflater:
    """Incremental, bounded decoder for one Content-Encoding (gzip, deflate or identity)."""

    def __init__(self, encoding: str) -> None:
        self._z: zlib._Decompress | None = None
        if encoding in ("gzip", "x-gzip"):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._sniff = encoding == "deflate"

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Yield decoded pieces of at most 64 KiB, lazily, so the caller can stop early."""
        if self._sniff and data:
            self._sniff = False
            # "deflate" is meant to be zlib-wrapped, but some servers send raw deflate.
            zlib_header = (
                len(data) > 1 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            )
            self._z = zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
        if self._z is None:
            if data:
                yield data
            return
        while True:
            piece = self._z.decompress(data, _STEP)
            data = self._z.unconsumed_tail
            if piece:
                yield piece
            if not data and len(piece) < _STEP:
                return

    def flush(self) -> bytes:
        return self._z.flush() if self._z is not None else b""


class Fetcher:
    """Fetches feeds with shared, sharded HTTP clients. Use as ``async with Fetcher() as f``."""

    def __init__(
        self,
        settings: FetchSettings = FetchSettings(),
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = s = settings
        limits = httpx.Limits(
            max_connections=s.pool_per_client, max_keepalive_connections=s.pool_per_client
        )
        timeout = httpx.Timeout(s.deadline, connect=s.connect_timeout)
        headers = {
            "User-Agent": s.user_agent,
            "Accept": ACCEPT,
            "Accept-Encoding": "gzip, deflate",
        }
        # One SSL context for all shards (loading the CA bundle costs ~15 ms per context).
        verify = httpx.create_ssl_context(trust_env=True)
        # An injected transport (tests) makes shards pointless: one client around it.
        self._clients = [
            httpx.AsyncClient(
                transport=transport,
                verify=verify,
                limits=limits,
                timeout=timeout,
                headers=headers,
                follow_redirects=True,
                max_redirects=s.max_redirects,
            )
            for _ in range(1 if transport is not None else max(1, s.clients))
        ]
        self._global = asyncio.Semaphore(s.concurrency)
        self._hosts: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every client and its connections."""
        for client in self._clients:
            await client.aclose()

    def _client_for(self, host: str) -> httpx.AsyncClient:
        return self._clients[zlib.crc32(host.encode()) % len(self._clients)]

    @contextlib.asynccontextmanager
    async def _host_slot(self, host: str) -> AsyncIterator[None]:
        sem, users = self._hosts.setdefault(host, (asyncio.Semaphore(self.settings.per_host), [0]))
        users[0] += 1
        try:
            async with sem:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._hosts[host]

    async def fetch(self, feed: str, url: str, caching: Caching | None = None) -> FetchResult:
        """GET ``url`` (conditionally, given ``caching``); raise ``FetchError`` on failure."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as e:
            raise FetchError(feed, f"invalid URL: {scrub(str(e))}", kind="transport") from e
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise FetchError(feed, f"not an http(s) URL: {safe_url(parsed)}", kind="transport")
        host = parsed.host.lower()
        headers: dict[str, str] = {}
        if caching is not None and caching.etag:
            headers["If-None-Match"] = caching.etag
        if caching is not None and caching.last_modified:
            headers["If-Modified-Since"] = caching.last_modified
        async with self._host_slot(host), self._global:
            start = time.monotonic()
            try:
                async with asyncio.timeout(self.settings.deadline):
                    return await self._get(feed, parsed, headers, caching, start)
            except TimeoutError as e:
                msg = f"no complete answer within {self.settings.deadline:g}s deadline"
                raise FetchError(feed, msg, kind="deadline") from e
            except httpx.HTTPError as e:
                raise _wrap(feed, e, self.settings) from e

    async def _get(
        self,
        feed: str,
        url: httpx.URL,
        headers: dict[str, str],
        caching: Caching | None,
        start: float,
    ) -> FetchResult:
        s = self.settings
        async with self._client_for(url.host.lower()).stream("GET", url, headers=headers) as resp:
            status = resp.status_code
            old = caching or Caching()
            etag = resp.headers.get("etag")
            last_modified = resp.headers.get("last-modified")
            if status == 304:
                # Read the (empty) body so httpcore returns the connection to the pool; closing
                # an unread response drops it, and every 304 would open a new TCP connection.
                await _read_body(feed, resp, s.max_bytes)
                return FetchResult(
                    url=str(resp.url),
                    status=304,
                    body=b"",
                    headers=_lower(resp.headers),
                    caching=Caching(
                        etag or old.etag, last_modified or old.last_modified, old.body_hash
                    ),
                    not_modified=True,
                    elapsed=time.monotonic() - start,
                    max_age=parse_max_age(resp.headers.get("cache-control")),
                )
            if not 200 <= status < 300:
                raise _http_error(feed, resp)
            length = resp.headers.get("content-length", "")
            if _is_int(length) and int(length) > s.max_bytes:
                raise FetchError(feed, f"body over {_mib(s.max_bytes)} cap", kind="too_large")
            body = await _read_body(feed, resp, s.max_bytes)
            return FetchResult(
                url=str(resp.url),
                status=status,
                body=body,
                headers=_lower(resp.headers),
                caching=Caching(etag, last_modified, hashlib.sha256(body).hexdigest()),
                elapsed=time.monotonic() - start,
                max_age=parse_max_age(resp.headers.get("cache-control")),
            )


def _lower(headers: httpx.Headers) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


async def _read_body(feed: str, resp: httpx.Response, cap: int) -> bytes:
    """Read and decode the body, aborting as soon as more than ``cap`` decoded bytes arrived."""
    encodings = [
        e.strip().lower()
        for e in resp.headers.get("content-encoding", "").split(",")
        if e.strip() and e.strip().lower() != "identity"
    ]
    for enc in encodings:
        if enc not in ("gzip", "x-gzip", "deflate"):
            raise FetchError(feed, f"unsupported Content-Encoding {enc!r}", kind="decode")
    # Encodings are listed in the order applied, so undo them from the last one.
    inflaters = [_Inflater(e) for e in reversed(encodings)]
    parts: list[bytes] = []
    size = 0

    def push(chunks: Iterable[bytes], level: int) -> None:
        nonlocal size
        for chunk in chunks:
            if level < len(inflaters):
                push(inflaters[level].feed(chunk), level + 1)
                continue
            size += len(chunk)
            if size > cap:
                raise FetchError(feed, f"body over {_mib(cap)} cap", kind="too_large")
            parts.append(chunk)

    try:
        async for raw in resp.aiter_raw():
            push([raw], 0)
        for level, inflater in enumerate(inflaters):
            push([inflater.flush()], level + 1)
    except zlib.error as e:
        names = "/".join(encodings)
        raise FetchError(feed, f"could not decode {names} body: {e}", kind="decode") from e
    return b"".join(parts)


def _http_error(feed: str, resp: httpx.Response) -> FetchError:
    status = resp.status_code
    reason = resp.reason_phrase if resp.reason_phrase else ""
    message = f"HTTP {status} {reason}".rstrip()
    retry_after = None
    if status in (429, 503):
        retry_after = parse_retry_after(resp.headers.get("retry-after"), time.time())
        if retry_after is not None:
            message += f" (retry after {retry_after:.0f}s)"
    return FetchError(feed, message, kind="http", status=status, retry_after=retry_after)


def _is_dns_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, socket.gaierror):
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(exc).lower()
    return any(s in text for s in _DNS_TEXTS)


def _wrap(feed: str, e: httpx.HTTPError, s: FetchSettings) -> FetchError:
    """Map an httpx exception to a FetchError with a short, URL-safe message."""
    try:
        where = safe_url(e.request.url)
        host = e.request.url.host
    except RuntimeError:  # no request attached
        where, host = "", ""
    detail = scrub(str(e)) or type(e).__name__
    if isinstance(e, httpx.TooManyRedirects):
        return FetchError(feed, f"more than {s.max_redirects} redirects", kind="redirects")
    if isinstance(e, httpx.ConnectTimeout):
        return FetchError(
            feed, f"no connection to {host} within {s.connect_timeout:g}s", kind="timeout"
        )
    if isinstance(e, httpx.PoolTimeout):
        return FetchError(feed, "timed out waiting for a free connection", kind="timeout")
    if isinstance(e, httpx.TimeoutException):
        return FetchError(feed, f"{host} stopped answering ({type(e).__name__})", kind="timeout")
    if isinstance(e, httpx.ConnectError):
        if _is_dns_failure(e):
            return FetchError(feed, f"could not resolve host {host}", kind="dns")
        return FetchError(feed, f"could not connect to {host}: {detail}", kind="connect")
    if isinstance(e, httpx.DecodingError):
        return FetchError(feed, f"could not decode body: {detail}", kind="decode")
    if isinstance(e, httpx.UnsupportedProtocol):
        return FetchError(feed, f"unsupported URL scheme ({where or detail})", kind="transport")
    return FetchError(feed, f"{type(e).__name__}: {detail}", kind="transport")
