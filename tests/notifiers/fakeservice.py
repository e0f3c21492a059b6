"""A real HTTP server on 127.0.0.1 that stands in for Slack and webhook receivers in tests.

It records every request and answers from a script of behaviours (then from ``default``):
``Reply(status, body, headers)``, ``Slow()`` (answers only when released at teardown, so the
client's timeout fires first) and ``Close()`` (reads the request, then drops the connection
without answering). Threaded ``http.server``; no aiohttp.
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Slow:
    """Hold the request until the service is released (or stopped), then answer 200."""

    reply: Reply = field(default_factory=Reply)


@dataclass(frozen=True)
class Close:
    """Read the request, then close the connection without answering."""


Behaviour = Reply | Slow | Close


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


class FakeService:
    """Start with ``with FakeService() as svc:``; ``svc.url(path)`` gives an address on it."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.default: Behaviour = Reply()
        self._script: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def will(self, *behaviours: Behaviour) -> None:
        """Answer the next requests with these behaviours, in order."""
        with self._lock:
            self._script.extend(behaviours)

    def release(self) -> None:
        """Let every held (``Slow``) request answer."""
        self._release.set()

    def _next(self) -> Behaviour:
        with self._lock:
            return self._script.popleft() if self._script else self.default

    def _record(self, r: Recorded) -> None:
        with self._lock:
            self.requests.append(r)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # the path may hold a test secret; keep stderr clean

            def _answer(self, reply: Reply) -> None:
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                service._record(
                    Recorded(
                        method=self.command,
                        path=self.path,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=body,
                    )
                )
                behaviour = service._next()
                if isinstance(behaviour, Close):
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if isinstance(behaviour, Slow):
                    service._release.wait(timeout=30)
                    self.close_connection = True
                    behaviour = behaviour.reply
                self._answer(behaviour)

            do_POST = _handle
            do_PUT = _handle
            do_GET = _handle

        return Handler

    def __enter__(self) -> FakeService:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
