"""A tiny HTTP/1.1 server on asyncio for ``/healthz``, ``/readyz`` and ``/metrics``.

No web framework: three read-only routes do not need one. ``HttpServer`` serves GET and HEAD
on exact paths (the query is ignored), keeps connections alive, and stays bounded:

* a request head larger than ``max_request`` bytes is answered 431 and the connection closed;
  a body (which none of our routes reads) larger than that is answered 413;
* a connection idle for ``idle_timeout`` seconds — or dripping its request head for that long
  — is closed;
* at most ``max_connections`` connections are served at once; more are closed at once.

``handlers`` are routes by path *prefix* that see the whole request (``Request``: method,
path, query, headers, body) and take any method: the WebSub callback (``daemon.websub.service``)
is one. Their bodies may be up to ``max_body`` bytes (Content-Length or chunked; more is
413), read within ``body_timeout`` seconds.

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

logger = logging.getLogger("daemon.http")

MAX_REQUEST = 8192
IDLE_TIMEOUT = 15.0
BODY_TIMEOUT = 60.0
MAX_CONNECTIONS = 32
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
class _Head:
    method: str
    path: str
    query: str
    keep_alive: bool
    length: int
    chunked: bool
    headers: dict[str, str]


def json_response(status: int, value: object) -> Response:
    return Response(status, json.dumps(value, sort_keys=True).encode() + b"\n", JSON_TYPE)


class _BadRequest(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


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
        handlers: Mapping[str, Handler] | None = None,
        max_body: int = MAX_REQUEST,
        body_timeout: float = BODY_TIMEOUT,
    ) -> None:
        self.host = host
        self.port = port
        self.routes = dict(routes)
        self.prefix_routes = dict(handlers or {})
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.max_request = max_request
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.address: tuple[str, int] = (host, port)

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=self.max_request
        )
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

    # -- one connection ---------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            if len(self._handlers) > self.max_connections:
                return
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except asyncio.CancelledError:
            pass  # the server is closing: the connection ends here
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Read and answer one request; whether to keep the connection open."""
        handler: Handler | None = None
        body = b""
        try:
            async with asyncio.timeout(self.idle_timeout):
                head = await reader.readuntil(b"\r\n\r\n")
                req = self._parse(head)
                method, path, keep_alive, length = req.method, req.path, req.keep_alive, req.length
                handler = self._prefix_route(path)
                if handler is None:
                    if req.chunked:
                        raise _BadRequest(501)  # no route takes a body; chunked ones are refused
                    if length > self.max_request:
                        raise _BadRequest(413)
                    if length:
                        await reader.readexactly(length)
            if handler is not None:
                async with asyncio.timeout(self.body_timeout):
                    body = await self._body(reader, req)
        except asyncio.LimitOverrunError:
            await self._write(writer, "GET", Response(431, b"request too large\n"), False)
            return False
        except _BadRequest as e:
            await self._write(writer, "GET", Response(e.status), False)
            return False
        except asyncio.IncompleteReadError as e:
            if e.partial:  # a request cut short; an idle connection closing is not an error
                logger.debug("http: incomplete request")
            return False
        if handler is not None:
            request = Request(method, path, req.query, req.headers, body)
            try:
                response = await handler(request)
            except Exception:
                logger.exception("http: handler for %s failed", path.split("/", 2)[1])
                response = Response(500, b"internal error\n")
            await self._write(writer, method, response, keep_alive)
            return keep_alive
        if method not in ("GET", "HEAD"):
            await self._write(writer, method, Response(405, b"method not allowed\n"), keep_alive)
            return keep_alive
        route = self.routes.get(path)
        if route is None:
            response = Response(404, b"not found\n")
        else:
            try:
                response = await route()
            except Exception:
                logger.exception("http: %s failed", path)
                response = Response(500, b"internal error\n")
        await self._write(writer, method, response, keep_alive)
        return keep_alive

    def _prefix_route(self, path: str) -> Handler | None:
        for prefix, handler in self.prefix_routes.items():
            if path.startswith(prefix):
                return handler
        return None

    async def _body(self, reader: asyncio.StreamReader, req: _Head) -> bytes:
        """The body of a request for a handler, at most ``max_body`` bytes."""
        if not req.chunked:
            if req.length > self.max_body:
                raise _BadRequest(413)
            return await reader.readexactly(req.length) if req.length else b""
        parts: list[bytes] = []
        size = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            digits = line.split(b";", 1)[0].strip()
            if not digits or not all(c in b"0123456789abcdefABCDEF" for c in digits):
                raise _BadRequest(400)
            n = int(digits, 16)
            if n == 0:
                break
            size += n
            if size > self.max_body:
                raise _BadRequest(413)
            parts.append(await reader.readexactly(n))
            if await reader.readexactly(2) != b"\r\n":
                raise _BadRequest(400)
        while await reader.readuntil(b"\r\n") != b"\r\n":
            pass  # trailers
        return b"".join(parts)

    @staticmethod
    def _parse(head: bytes) -> _Head:
        """A request head, parsed; raises _BadRequest."""
        try:
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
        except ValueError:
            raise _BadRequest(400) from None
        if not version.startswith("HTTP/1."):
            raise _BadRequest(505)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise _BadRequest(400)
            key, value = name.strip().lower(), value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        encoding = headers.get("transfer-encoding")
        chunked = encoding is not None
        if encoding is not None and (encoding.lower() != "chunked" or "content-length" in headers):
            raise _BadRequest(501)  # only plain chunked, and never with a Content-Length
        raw_length = headers.get("content-length", "0")
        if not raw_length.isascii() or not raw_length.isdigit():
            raise _BadRequest(400)
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        path, _, query = target.partition("?")
        return _Head(method, path, query, keep_alive, int(raw_length), chunked, headers)

    @staticmethod
    async def _write(
        writer: asyncio.StreamWriter, method: str, response: Response, keep_alive: bool
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
        await writer.drain()


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
