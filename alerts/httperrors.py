"""HTTP delivery for notifiers: one attempt, errors mapped to ``NotifyError``, secrets kept out.

The mapping (used by the Slack and webhook notifiers)::

    2xx                         success
    429                         recoverable, reason rate_limited, retry_after from Retry-After
    408                         recoverable, reason timeout
    5xx                         recoverable, reason server (retry_after if the server sent one)
    401                         permanent, reason auth
    other 4xx, 3xx              permanent, reason client (redirects are not followed)
    timeouts                    recoverable, reason timeout
    transport errors            recoverable, reason transport

Secret hygiene: webhook URLs carry their secret in the path, and httpx puts the URL in exception
messages and in its own ``INFO`` log line ("HTTP Request: POST https://…"). Messages here are
built from scratch, httpx exceptions are not chained (``from None``; their text, scrubbed, is
kept in the message), and :func:`protect` installs a filter on the ``httpx`` logger that
replaces registered secrets with ``***``.

Clients: :func:`notifier_client` builds each HTTP notifier its own ``httpx.AsyncClient`` whose
requests are spread over a few small connection pools (least busy first) instead of one big
pool. httpcore scans every connection of a pool, with a readability syscall each, whenever a
request starts or ends: one pool of 16 keep-alive connections cost ~1 ms of CPU per request at
16 requests in flight, four pools of four ~0.4 ms (``bench/delivery.py``; ``daemon/fetch/client.py``
shards its feed clients for the same reason). With a proxy configured in the environment
(``HTTPS_PROXY``…) the client is a plain one, so httpx applies the proxy as before.
"""

from __future__ import annotations

import logging
import math
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit
from urllib.request import getproxies

import httpx

from daemon import __version__
from daemon.errors import NotifyError

REDACTED = "***"
_MIN_SECRET_LEN = 6  # shorter fragments (e.g. "/" or "a") would mangle every log line

_secrets: set[str] = set()


def secret_fragments(secret: str) -> set[str]:
    """The secret and, for a URL, the parts of it that are secret on their own.

    A webhook URL's secret is its path, query or userinfo; the host alone is not secret and is
    kept readable.
    """
    out = {secret}
    try:
        parts = urlsplit(secret)
    except ValueError:
        return out
    if parts.scheme and parts.netloc:
        out.update({parts.path, parts.query, parts.password or "", parts.username or ""})
        if parts.query:
            out.add(f"{parts.path}?{parts.query}")
    return {f for f in out if len(f) >= _MIN_SECRET_LEN}


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every registered secret (and each of ``secrets``) replaced by ``***``."""
    fragments: set[str] = set(_secrets)
    for s in secrets:
        fragments |= secret_fragments(s)
    for fragment in sorted(fragments, key=len, reverse=True):
        if fragment in text:
            text = text.replace(fragment, REDACTED)
    return text


class _RedactSecrets(logging.Filter):
    """Rewrites records of the logger it sits on so no registered secret reaches a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is not ours to fix; let it pass
            return True
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


_FILTER = _RedactSecrets()


def protect(secret: str, *, logger: str = "httpx", whole: bool = False) -> None:
    """Register a secret: from now on it is redacted from ``logger``'s records (httpx's by
    default) and from every message ``scrub`` cleans. ``whole``: everything after a URL's
    scheme is secret too (an Apprise URL keeps tokens in its "host").

    (httpcore's debug records name only host and port, never the path or query.)
    """
    _secrets.update(secret_fragments(secret))
    if whole and "://" in secret:
        rest = secret.split("://", 1)[1]
        if len(rest) >= _MIN_SECRET_LEN:
            _secrets.add(rest)
    target = logging.getLogger(logger)
    if _FILTER not in target.filters:
        target.addFilter(_FILTER)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP-date), else None.

    Never negative; None when absent or unreadable.
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def error_for_status(
    service: str,
    response: httpx.Response,
    *,
    detail: str | None = None,
    now: datetime | None = None,
) -> NotifyError | None:
    """The ``NotifyError`` for a response, or None when it is a success (2xx).

    ``detail`` is a short, already-sanitised explanation to append (e.g. Slack's error code).
    """
    status = response.status_code
    if 200 <= status < 300:
        return None
    message = f"{service} answered HTTP {status}" + (f" ({detail})" if detail else "")
    retry_after = parse_retry_after(response.headers.get("retry-after"), now=now)
    if status == 429:
        return NotifyError(
            message, recoverable=True, reason="rate_limited", retry_after=retry_after
        )
    if status == 408:
        return NotifyError(message, recoverable=True, reason="timeout", retry_after=retry_after)
    if status >= 500:
        return NotifyError(message, recoverable=True, reason="server", retry_after=retry_after)
    if status == 401:
        return NotifyError(message, recoverable=False, reason="auth")
    if 300 <= status < 400:
        message += " (redirects are not followed)"
    return NotifyError(message, recoverable=False, reason="client")


def error_for_exception(
    service: str, exc: Exception, *, secrets: Iterable[str] = ()
) -> NotifyError:
    """The ``NotifyError`` for an exception raised by httpx while sending (scrubbed)."""
    detail = scrub(str(exc), secrets)
    suffix = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return NotifyError(f"{service} timed out ({suffix})", recoverable=True, reason="timeout")
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return NotifyError(
            f"{service} URL is not usable ({suffix})", recoverable=False, reason="config"
        )
    return NotifyError(
        f"{service} transport error ({suffix})", recoverable=True, reason="transport"
    )


async def post(
    http: httpx.AsyncClient,
    service: str,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    request_timeout: float,
    secrets: Iterable[str] = (),
) -> httpx.Response:
    """POST once, without following redirects; return the 2xx response or raise NotifyError.

    The response body is read (so callers may inspect it). ``url`` and ``secrets`` (e.g.
    secret header values) are scrubbed from every message this raises.
    """
    secrets = [url, *secrets]
    try:
        response = await http.post(
            url,
            content=content,
            headers=dict(headers),
            timeout=request_timeout,
            follow_redirects=False,
        )
    except (httpx.HTTPError, httpx.InvalidURL) as e:
        raise error_for_exception(service, e, secrets=secrets) from None
    error = error_for_status(service, response, detail=_error_code(response))
    if error is not None:
        raise error
    return response


def _error_code(response: httpx.Response) -> str | None:
    """A short machine code from an error body (Slack's ``invalid_payload``…), if it is one.

    Only ``[a-z0-9_.-]{1,64}`` is echoed: arbitrary bodies could carry anything, including a
    reflected URL.
    """
    if response.is_success:
        return None
    text = response.text.strip()
    if 0 < len(text) <= 64 and all(c.isascii() and (c.isalnum() or c in "_.-") for c in text):
        return text
    return None


# -- clients ------------------------------------------------------------------------------------

POOL_SIZE = 4
"""Connections per pool of a notifier client."""


class _Release(httpx.AsyncByteStream):
    """A response body that gives its pool's slot back when closed (once)."""

    def __init__(self, stream: httpx.AsyncByteStream, release: _Slot) -> None:
        self._stream = stream
        self._release = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._release.free()


class _Slot:
    __slots__ = ("_busy", "_index", "_freed")

    def __init__(self, busy: list[int], index: int) -> None:
        self._busy, self._index, self._freed = busy, index, False
        busy[index] += 1

    def free(self) -> None:
        if not self._freed:
            self._freed = True
            self._busy[self._index] -= 1


class PoolsTransport(httpx.AsyncBaseTransport):
    """``pools`` small ``httpx.AsyncHTTPTransport`` pools; each request goes to the one with the
    fewest requests in flight (the first on a tie, so a quiet notifier reuses one connection)."""

    def __init__(self, pools: int, size: int = POOL_SIZE, *, verify: ssl.SSLContext) -> None:
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        self._pools = [httpx.AsyncHTTPTransport(verify=verify, limits=limits) for _ in range(pools)]
        self._busy = [0] * pools

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        busy = self._busy
        index = busy.index(min(busy))
        slot = _Slot(busy, index)
        try:
            response = await self._pools[index].handle_async_request(request)
        except BaseException:
            slot.free()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Release(response.stream, slot)
        return response

    def in_flight(self) -> tuple[int, ...]:
        """Requests in flight per pool (sent and whose response is not closed yet)."""
        return tuple(self._busy)

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


def notifier_client(*, connections: int = 16, timeout: float = 30.0) -> httpx.AsyncClient:
    """A notifier's own HTTP client: no redirects, feedwatch's User-Agent, and room for
    ``connections`` requests at once, in :class:`PoolsTransport` pools of ``POOL_SIZE`` (a plain
    client when the environment configures a proxy, which httpx then applies)."""
    proxies = getproxies()
    proxied = any(proxies.get(scheme) for scheme in ("http", "https", "all"))
    pools = max(1, -(-connections // POOL_SIZE))
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        headers={"User-Agent": f"feedwatch/{__version__}"},
        limits=httpx.Limits(max_connections=max(connections, 1)),
        transport=None if proxied else PoolsTransport(pools, verify=httpx.create_ssl_context()),
    )
