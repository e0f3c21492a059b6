"""A real HTTP/1.1 server on 127.0.0.1 that tests control.

``FeedServer`` runs ``http.server.ThreadingHTTPServer`` on a free port in a background thread,
one thread per connection, with keep-alive. Tests register what each path answers::

    with FeedServer() as srv:
        srv.set("/feed.xml", RSS, etag='"v1"')          # 304 when If-None-Match matches
        srv.fail("/busy", 429, retry_after="120")
        srv.slow("/drip", b"x" * 100, interval=0.2)      # headers now, then 1 byte every 0.2 s
        srv.redirect("/a", "/b"); srv.redirect("/b", "/a")   # a loop
        srv.close_connection("/rst")                     # read the request, close, no answer
        srv.gzip_bomb("/bomb", 50 * 2**20)               # ~50 KB on the wire, 50 MB inflated
        srv.set_handler("/x", lambda req: Response(201, b"made"))
        srv.hits("/feed.xml"); srv.requests[-1].headers["If-None-Match"]  # case-insensitive

Routes match the path without its query (a route registered with a query matches that exact
target first); unknown paths answer 404. A handler returning ``None`` closes the connection
unanswered; one that raises answers 500 and lands in ``errors``. ``requests``, ``hits``,
``in_flight`` and ``max_concurrent`` observe; ``wait_in_flight`` / ``wait_until`` block (no
sleeping) until a condition holds; from async code call them via ``asyncio.to_thread``.
``stop()`` never hangs: connection threads are daemons and not joined, drips watch a stop event,
and open sockets are shut down so idle keep-alive connections wake up.
"""

from __future__ import annotations

import gzip as gzip_module
import socket
import threading
import traceback
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

RSS_TYPE = "application/rss+xml; charset=utf-8"


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive request headers (repeated headers joined with ", ")."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        merged: dict[str, str] = {}
        for key, value in items:
            k = key.lower()
            merged[k] = f"{merged[k]}, {value}" if k in merged else value
        self._d = merged

    def __getitem__(self, key: str) -> str:
        return self._d[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __repr__(self) -> str:
        return f"Headers({self._d!r})"


@dataclass(frozen=True, slots=True)
class Request:
    """A request as received. ``path`` has no query; ``target`` is the raw one; ``peer`` is the
    client's "host:port" (equal peers = the same, kept-alive connection)."""

    method: str
    path: str
    query: str
    target: str
    headers: Headers
    body: bytes
    peer: str = ""


RecordedRequest = Request


@dataclass(slots=True)
class Response:
    """What a custom handler answers. ``Content-Length`` is added unless given."""

    status: int = 200
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = RSS_TYPE


Handler = Callable[[Request], Response | None]
_Route = Callable[["_ConnHandler", Request], None]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # never join connection threads on close: stop() must not hang
    owner: FeedServer


class _ConnHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else ~40 ms lost per response to delayed ACKs
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        self.server.owner._track(self.connection, add=False)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""

    def _any(self) -> None:
        self.server.owner._dispatch(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _any

    def send(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        """Write a complete response (no body for HEAD and 304)."""
        self.send_response(status)
        lowered = {k.lower() for k in headers}
        for key, value in headers.items():
            self.send_header(key, value)
        chunked = any(
            k.lower() == "transfer-encoding" and v.lower() == "chunked" for k, v in headers.items()
        )
        if "content-length" not in lowered and not chunked:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status != 304:
            if chunked:
                step = 4096
                parts = [
                    b"%x\r\n%s\r\n" % (len(body[i : i + step]), body[i : i + step])
                    for i in range(0, len(body), step)
                ]
                body = b"".join(parts) + b"0\r\n\r\n"
            self.wfile.write(body)
        self.wfile.flush()


def _etag_matches(header: str | None, etag: str) -> bool:
    if header is None:
        return False
    tags = [t.strip() for t in header.split(",")]
    bare = etag.removeprefix("W/")
    return "*" in tags or any(t.removeprefix("W/") == bare for t in tags)


def _not_modified_since(header: str | None, last_modified: str) -> bool:
    if header is None:
        return False
    if header == last_modified:
        return True
    try:
        return parsedate_to_datetime(header) >= parsedate_to_datetime(last_modified)
    except (TypeError, ValueError):
        return False


def _gzip_zeros(size: int) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(min(size, 2**20))
    parts, left = [], size
    while left > 0:
        parts.append(comp.compress(block[: min(left, len(block))]))
        left -= len(block)
    parts.append(comp.flush())
    return b"".join(parts)


class FeedServer:
    """A controllable HTTP server on 127.0.0.1 (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._routes: dict[str, _Route] = {}
        self._requests: list[Request] = []
        self._in_flight: dict[str, int] = {}
        self._max: dict[str, int] = {}
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.errors: list[BaseException] = []
        self.base_url = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FeedServer:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        httpd = _Server(("127.0.0.1", 0), _ConnHandler)
        httpd.owner = self
        self._httpd = httpd
        self.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake drips and idle keep-alive connections; returns promptly."""
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._httpd = self._thread = None

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` on this server."""
        return self.base_url + (path if path.startswith("/") else "/" + path)

    # -- behaviour ---------------------------------------------------------------------------

    def set(
        self,
        path: str,
        body: bytes | str,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        content_type: str = RSS_TYPE,
        etag: str | None = None,
        last_modified: str | None = None,
        gzip: bool = False,
        chunked: bool = False,
    ) -> None:
        """Serve ``body``; answer 304 when If-None-Match / If-Modified-Since match.

        ``chunked`` sends Transfer-Encoding: chunked instead of a Content-Length.
        """
        raw = body.encode() if isinstance(body, str) else body
        payload = gzip_module.compress(raw, mtime=0) if gzip else raw
        out = {"Content-Type": content_type, **(headers or {})}
        if gzip:
            out["Content-Encoding"] = "gzip"
        if chunked:
            out["Transfer-Encoding"] = "chunked"
        validators = {}
        if etag is not None:
            validators["ETag"] = etag
        if last_modified is not None:
            validators["Last-Modified"] = last_modified
        out.update(validators)

        def route(h: _ConnHandler, req: Request) -> None:
            inm = req.headers.get("if-none-match")
            fresh = (etag is not None and _etag_matches(inm, etag)) or (
                inm is None
                and last_modified is not None
                and _not_modified_since(req.headers.get("if-modified-since"), last_modified)
            )
            if fresh:
                h.send(304, validators, b"")
            else:
                h.send(status, out, payload)

        self._route(path, route)

    def set_handler(self, path: str, fn: Handler) -> None:
        """Answer with ``fn(request)``; ``None`` closes the connection without answering."""

        def route(h: _ConnHandler, req: Request) -> None:
            resp = fn(req)
            if resp is None:
                h.close_connection = True
                return
            body = resp.body.encode() if isinstance(resp.body, str) else resp.body
            out = dict(resp.headers)
            if resp.content_type is not None and "content-type" not in {k.lower() for k in out}:
                out["Content-Type"] = resp.content_type
            h.send(resp.status, out, body)

        self._route(path, route)

    def fail(
        self, path: str, status: int, *, retry_after: str | None = None, body: bytes = b""
    ) -> None:
        """Answer ``status`` (with Retry-After if given)."""
        headers = {"Content-Type": "text/plain"}
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        self._route(path, lambda h, req: h.send(status, headers, body))

    def slow(self, path: str, body: bytes | str, *, chunk: int = 1, interval: float = 1.0) -> None:
        """Send headers (full Content-Length) at once, then ``chunk`` bytes per interval."""
        raw = body.encode() if isinstance(body, str) else body

        def route(h: _ConnHandler, req: Request) -> None:
            h.send_response(200)
            h.send_header("Content-Type", RSS_TYPE)
            h.send_header("Content-Length", str(len(raw)))
            h.end_headers()
            h.wfile.flush()
            for i in range(0, len(raw), chunk):
                if i and self._stopping.wait(interval):
                    h.close_connection = True
                    return
                h.wfile.write(raw[i : i + chunk])
                h.wfile.flush()

        self._route(path, route)

    def redirect(self, path: str, to_path: str, status: int = 302) -> None:
        """Redirect to ``to_path`` (a path on this server, or an absolute URL)."""

        def route(h: _ConnHandler, req: Request) -> None:
            location = self.url(to_path) if to_path.startswith("/") else to_path
            h.send(status, {"Location": location}, b"")

        self._route(path, route)

    def close_connection(self, path: str) -> None:
        """Read the request, then close the connection without any response."""

        def route(h: _ConnHandler, req: Request) -> None:
            h.close_connection = True

        self._route(path, route)

    def gzip_bomb(self, path: str, decompressed_size: int) -> None:
        """Serve ``decompressed_size`` zero bytes gzip-compressed, with Content-Encoding: gzip."""
        payload = _gzip_zeros(decompressed_size)
        headers = {"Content-Type": RSS_TYPE, "Content-Encoding": "gzip"}
        self._route(path, lambda h, req: h.send(200, headers, payload))

    # -- observation -------------------------------------------------------------------------

    @property
    def requests(self) -> list[Request]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def hits(self, path: str) -> int:
        """How many requests reached ``path`` (query ignored unless ``path`` has one)."""
        with self._lock:
            return sum(1 for r in self._requests if path in (r.path, r.target))

    def in_flight(self, path: str) -> int:
        """Requests on ``path`` whose handler has not finished yet."""
        with self._lock:
            return self._in_flight.get(path, 0)

    def max_concurrent(self, path: str) -> int:
        """The most requests on ``path`` that were ever in flight at once."""
        with self._lock:
            return self._max.get(path, 0)

    def wait_in_flight(self, path: str, n: int, timeout: float = 5.0) -> bool:
        """Block until at least ``n`` requests are in flight on ``path``; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self._in_flight.get(path, 0) >= n, timeout)

    def wait_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Block until ``condition()`` (re-checked on every request start/end); False on timeout."""
        with self._lock:
            return self._lock.wait_for(condition, timeout)

    # -- internals ---------------------------------------------------------------------------

    def _route(self, path: str, route: _Route) -> None:
        with self._lock:
            self._routes[path] = route

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _dispatch(self, h: _ConnHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        path, _, query = h.path.partition("?")
        peer = f"{h.client_address[0]}:{h.client_address[1]}"
        req = Request(h.command, path, query, h.path, Headers(h.headers.items()), body, peer)
        with self._lock:
            self._requests.append(req)
            route = self._routes.get(h.path) or self._routes.get(path)
            self._in_flight[path] = n = self._in_flight.get(path, 0) + 1
            self._max[path] = max(n, self._max.get(path, 0))
            self._lock.notify_all()
        try:
            if route is None:
                h.send(404, {"Content-Type": "text/plain"}, b"not found")
            else:
                route(h, req)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            h.close_connection = True  # the client went away mid-answer
        except Exception as e:
            with self._lock:
                self.errors.append(e)
            try:
                h.send(500, {"Content-Type": "text/plain"}, traceback.format_exc().encode())
            except OSError:
                h.close_connection = True
        finally:
            with self._lock:
                self._in_flight[path] -= 1
                self._lock.notify_all()
