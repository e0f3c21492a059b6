"""A small HTTP/1.1 server on asyncio: ``/healthz``, ``/readyz``, ``/metrics``, WebSub callbacks.

No web framework: a few routes do not need one. Requests are parsed by h11, after the strict
checks of ``daemon.ops.httpwire`` (every malformed head is a 400 and the connection closed).
``HttpServer`` serves GET and HEAD on exact paths (the query is ignored), keeps connections
alive, and stays bounded:

* a request head larger than ``max_request`` bytes is answered 431; it must arrive within
  ``idle_timeout`` seconds of the connection (or of the previous answer), else the connection
  is closed; a body on a plain route larger than ``max_request`` is answered 413;
* an answer must be taken by the client within ``write_timeout`` seconds, else the
  connection is closed;
* at most ``max_connections`` connections are served at once. When they are all taken, a new
  connection takes the slot of the one that has waited longest without sending a byte of its
  next request (an idle keep-alive client, which is closed: ``evicted``); failing that, up to
  as many more get ``OVERFLOW_WAIT`` seconds to send their head, where ``/healthz`` and
  ``/readyz`` are answered (an orchestrator's probe is not starved by idle or slow clients)
  and anything else gets 503 with ``Retry-After``; beyond those (and their silent ones, which
  are evicted the same way), connections are closed at once. Every refusal is counted
  (``on_refuse(reason)``; ``/metrics``: ``http_refused_total``) and logged at most once per
  ``REFUSAL_LOG_EVERY`` seconds with the counts.

``handlers`` are routes by path *prefix* that see the whole request (``Request``: method,
path, query, headers, body) and take any method: the WebSub callback (``daemon.websub.service``)
is one. A ``Prefix`` route's ``check`` sees the head first and may answer at once, the body
unread (an unknown callback token: 404/410; too many pushes queued: 503). Bodies may be up to
``max_body`` bytes (Content-Length or chunked; a larger declared length is 413 before a byte
is read), read within ``body_timeout`` seconds.

``endpoints()`` builds the three routes: ``/healthz`` answers 200 while the event loop runs
(it is served *by* the loop, so an answer means the loop is responsive); ``/readyz`` answers
200 or 503 with a JSON body naming every check and the failing ones; ``/metrics`` the
Prometheus exposition.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType

import h11

from daemon.logging import log
from daemon.ops.httpwire import check_head, printable

logger = logging.getLogger("daemon.http")

MAX_REQUEST = 8192
IDLE_TIMEOUT = 15.0
BODY_TIMEOUT = 15.0
WRITE_TIMEOUT = 15.0
MAX_CONNECTIONS = 32
OVERFLOW_WAIT = 1.0  # seconds an overflow connection has to send a health probe's head
HEALTH_PATHS = ("/healthz", "/readyz")
REFUSAL_LOG_EVERY = 10.0
READ_SIZE = 65536
JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = TEXT_TYPE
    headers: tuple[tuple[str, str], ...] = ()  # more headers, e.g. (("Retry-After", "60"),)


Route = Callable[[], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Request:
    """A request for a prefix handler. ``headers`` have lower-case names (repeated ones
    joined with ", "); ``query`` is the raw query string."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes = b""


Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Prefix:
    """A route by path prefix: ``handle`` gets the whole request; ``check``, when given, gets
    its head first (``Request.body`` empty) and may answer at once, the body unread."""

    handle: Handler
    check: Callable[[Request], Awaitable[Response | None]] | None = None


def json_response(status: int, value: object) -> Response:
    return Response(status, json.dumps(value, sort_keys=True).encode() + b"\n", JSON_TYPE)


class _Refused(Exception):
    """Answer ``status`` and close the connection; ``reason`` is what gets counted."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status)
        self.status = status
        self.reason = reason


class _Closed(Exception):
    """The client went away, or was too slow: close without an answer."""


class HttpServer:
    """Serves ``routes`` (exact path → coroutine returning a ``Response``) on ``host:port``.
    ``async with`` starts and stops it; ``address`` is the bound (host, port): port 0 picks a
    free one."""

    def __init__(
        self,
        host: str,
        port: int,
        routes: Mapping[str, Route],
        *,
        max_request: int = MAX_REQUEST,
        idle_timeout: float = IDLE_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        max_overflow: int | None = None,  # default: max_connections
        handlers: Mapping[str, Handler | Prefix] | None = None,
        max_body: int = MAX_REQUEST,
        body_timeout: float = BODY_TIMEOUT,
        write_timeout: float = WRITE_TIMEOUT,
        on_refuse: Callable[[str], None] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.routes = dict(routes)
        self.prefix_routes = {
            k: v if isinstance(v, Prefix) else Prefix(v) for k, v in (handlers or {}).items()
        }
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.write_timeout = write_timeout
        self.max_request = max_request
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.max_overflow = max_connections if max_overflow is None else max_overflow
        self.on_refuse = on_refuse
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._served = 0  # connections in the regular slots
        self._overflow = 0  # connections given OVERFLOW_WAIT to send a health probe
        # Connections waiting for a request head without a byte of it yet, oldest first:
        # the first to go when a new connection needs a slot.
        self._silent: dict[asyncio.Task[None], bool] = {}  # task -> in the overflow
        self._refused: dict[str, int] = {}
        self._refusals_logged = 0.0
        self.address: tuple[str, int] = (host, port)

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        sockname = self._server.sockets[0].getsockname()
        self.address = (str(sockname[0]), int(sockname[1]))
        return self.address

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    async def aclose(self) -> None:
        """Stop listening and close every connection (requests in progress are cut)."""
        if self._server is None:
            return
        self._server.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> HttpServer:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- refusals ---------------------------------------------------------------------------
    def _refuse(self, reason: str) -> None:
        """Count a refusal; log the counts at most once per REFUSAL_LOG_EVERY seconds."""
        if self.on_refuse is not None:
            self.on_refuse(reason)
        self._refused[reason] = self._refused.get(reason, 0) + 1
        now = time.monotonic()
        if now - self._refusals_logged >= REFUSAL_LOG_EVERY:
            self._refusals_logged = now
            counts, self._refused = self._refused, {}
            log(logger, "http_refused", level=logging.WARNING, **counts)

    def _evict(self, overflow: bool) -> bool:
        """Close the connection of the pool (regular or overflow) that has been silent the
        longest, so that a new one takes its slot; False if none is silent."""
        victim = next((t for t, o in self._silent.items() if o == overflow), None)
        if victim is None:
            return False
        del self._silent[victim]
        victim.cancel()
        self._refuse("evicted")
        return True

    # -- one connection ---------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        overflow = self._served >= self.max_connections and not self._evict(False)
        if overflow and self._overflow >= self.max_overflow and not self._evict(True):
            self._refuse("connections")
            writer.close()
            return
        self._handlers.add(task)
        if overflow:
            self._overflow += 1
        else:
            self._served += 1
        try:
            buffer, keep = b"", True
            while keep:
                keep, buffer = await self._one(reader, writer, buffer, overflow=overflow)
        except (ConnectionError, _Closed):
            pass
        except asyncio.CancelledError:
            pass  # the server is closing: the connection ends here
        finally:
            if overflow:
                self._overflow -= 1
            else:
                self._served -= 1
            self._silent.pop(task, None)
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        buffer: bytes,
        *,
        overflow: bool,
    ) -> tuple[bool, bytes]:
        """Read and answer one request; (keep the connection open, bytes read past it)."""
        method = "GET"
        try:
            head, buffer = await self._head(reader, buffer, overflow)
            conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_request)
            conn.receive_data(head)
            request, keep_alive = _request(conn)
            method = request.method
            if overflow and (request.path not in HEALTH_PATHS or method not in ("GET", "HEAD")):
                raise _Refused(503, "busy")
            prefix = self._prefix_route(request.path)
            if prefix is not None and prefix.check is not None:
                early = await self._call(prefix.check, request)
                if early is not None:
                    await self._write(writer, method, early, False)
                    return False, b""
            limit = self.max_body if prefix is not None else self.max_request
            try:
                async with asyncio.timeout(self.body_timeout):
                    body, buffer = await self._body(reader, conn, request, buffer, limit)
            except TimeoutError:
                self._refuse("body_timeout")
                raise _Closed from None
        except _Refused as e:
            self._refuse(e.reason)
            phrase = HTTPStatus(e.status).phrase.lower()
            retry = (("Retry-After", "1"),) if e.status == 503 else ()
            await self._write(
                writer, method, Response(e.status, f"{phrase}\n".encode(), headers=retry), False
            )
            return False, b""
        if prefix is not None:
            full = Request(method, request.path, request.query, request.headers, body)
            response = await self._call(prefix.handle, full) or Response(500)
        elif method not in ("GET", "HEAD"):
            response = Response(405, b"method not allowed\n")
        elif (route := self.routes.get(request.path)) is None:
            response = Response(404, b"not found\n")
        else:
            try:
                response = await route()
            except Exception:
                logger.exception("http: %s failed", printable(request.path, 100))
                response = Response(500, b"internal error\n")
        await self._write(writer, method, response, keep_alive)
        return keep_alive, buffer

    async def _call(
        self, handler: Callable[[Request], Awaitable[Response | None]], request: Request
    ) -> Response | None:
        try:
            return await handler(request)
        except Exception:
            where = printable(request.path.split("/", 2)[1], 40)
            logger.exception("http: handler for %s failed", where)
            return Response(500, b"internal error\n")

    def _prefix_route(self, path: str) -> Prefix | None:
        for prefix, route in self.prefix_routes.items():
            if path.startswith(prefix):
                return route
        return None

    async def _head(
        self, reader: asyncio.StreamReader, buffer: bytes, overflow: bool
    ) -> tuple[bytes, bytes]:
        """The next request head (checked strictly), and the bytes read past it."""
        task = asyncio.current_task()
        assert task is not None
        try:
            async with asyncio.timeout(OVERFLOW_WAIT if overflow else self.idle_timeout):
                while (end := buffer.find(b"\r\n\r\n")) < 0:
                    if len(buffer) > self.max_request:
                        raise _Refused(431, "too_large")
                    if not buffer:
                        self._silent[task] = overflow
                    data = await reader.read(READ_SIZE)
                    self._silent.pop(task, None)
                    if not data:
                        raise _Closed  # the client closed (mid-request or between requests)
                    buffer += data
        except TimeoutError:
            if buffer:  # a head started and not finished in time (slowloris)
                self._refuse("head_timeout")
            raise _Closed from None
        head, rest = buffer[: end + 4], buffer[end + 4 :]
        if len(head) > self.max_request:
            raise _Refused(431, "too_large")
        status = check_head(head)
        if status is not None:
            raise _Refused(status, "malformed")
        return head, rest

    async def _body(
        self,
        reader: asyncio.StreamReader,
        conn: h11.Connection,
        request: Request,
        buffer: bytes,
        limit: int,
    ) -> tuple[bytes, bytes]:
        """The request's body (at most ``limit`` bytes, else 413), and the bytes past it."""
        declared = request.headers.get("content-length")  # 1 to 18 digits: check_head
        if declared is not None and int(declared) > limit:
            raise _Refused(413, "too_large")
        parts: list[bytes] = []
        size = 0
        if buffer:  # (h11 takes empty data for the end of the connection)
            conn.receive_data(buffer)
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as e:
                raise _Refused(400, "malformed") from e
            if event is h11.NEED_DATA:
                data = await reader.read(READ_SIZE)
                if not data:
                    raise _Closed
                conn.receive_data(data)
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > limit:
                    raise _Refused(413, "too_large")
                parts.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(parts), bytes(conn.trailing_data[0])
            else:
                raise _Closed

    async def _write(
        self, writer: asyncio.StreamWriter, method: str, response: Response, keep_alive: bool
    ) -> None:
        status = HTTPStatus(response.status)
        head = (
            f"HTTP/1.1 {status.value} {status.phrase}\r\n"
            f"Content-Type: {response.content_type}\r\n"
            f"Content-Length: {len(response.body)}\r\n"
            "Cache-Control: no-store\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in response.headers)
            + f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + (b"" if method == "HEAD" else response.body))
        try:
            async with asyncio.timeout(self.write_timeout):
                await writer.drain()
        except TimeoutError:
            self._refuse("write_timeout")
            raise _Closed from None


def _request(conn: h11.Connection) -> tuple[Request, bool]:
    """The head h11 parsed (no body yet) and whether the connection may be kept alive;
    raises _Refused."""
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError as e:
        raise _Refused(400, "malformed") from e
    if not isinstance(event, h11.Request):
        raise _Refused(400, "malformed")
    headers: dict[str, str] = {}
    for name, value in event.headers:
        key, text = name.decode("ascii"), value.decode("ascii")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    path, _, query = event.target.decode("ascii").partition("?")
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    if event.http_version == b"1.1":
        keep_alive = "close" not in tokens
    else:
        keep_alive = "keep-alive" in tokens
    return Request(event.method.decode("ascii"), path, query, headers), keep_alive


def endpoints(
    *,
    ready: Callable[[], Awaitable[Mapping[str, bool]]],
    metrics: Callable[[], bytes],
    metrics_type: str,
    started: float | None = None,
) -> dict[str, Route]:
    """The routes ``/healthz``, ``/readyz`` and ``/metrics``.

    ``ready`` returns named checks (e.g. ``{"redis": True, "rules": True, "scheduler":
    False}``); ``/readyz`` is 200 when all hold, else 503 with ``failing`` naming the others.
    """
    since = time.monotonic() if started is None else started

    async def healthz() -> Response:
        return json_response(200, {"status": "ok", "uptime_s": round(time.monotonic() - since)})

    async def readyz() -> Response:
        checks = dict(await ready())
        failing = sorted(name for name, ok in checks.items() if not ok)
        body = {"ready": not failing, "checks": checks, "failing": failing}
        return json_response(503 if failing else 200, body)

    async def metrics_route() -> Response:
        return Response(200, metrics(), metrics_type)

    return {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics_route}
