"""Serve the demo feeds (``demo/feeds/NAME.xml``) on 127.0.0.1 with fresh publication times.

Usage::

    python demo/serve.py [--port 0] [--write-port-file PATH] [--verbose]

Each template is served at ``/NAME.xml``; ``/`` lists them. Templates hold placeholders such as
``{{pub:-35m}}`` ("35 minutes ago") or ``{{pub:-1h30m@+03:00}}`` (the same instant written in
UTC+03:00). They are rendered once, when the server starts, so a feed's bytes, ETag and
Last-Modified stay the same for the server's lifetime and conditional requests get ``304``.
RSS gets RFC 822 dates, Atom RFC 3339.

Importable: ``serve(port=0) -> (server, base_url)`` runs the server in a background thread;
``stop(server)`` shuts it down.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import signal
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType

FEEDS_DIR = Path(__file__).resolve().parent / "feeds"

_PLACEHOLDER = re.compile(r"\{\{pub:-(?P<ago>(?:\d+[smhd])+)(?:@(?P<offset>[+-]\d{2}:\d{2}))?\}\}")
_PART = re.compile(r"(\d+)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_LEFTOVER = re.compile(r"\{\{.*?\}\}")
_ATOM_ROOT = re.compile(r"<feed[\s>]")


def feed_names(feeds_dir: Path = FEEDS_DIR) -> list[str]:
    """Names of the demo feeds (template file names without ``.xml``), sorted."""
    return sorted(p.stem for p in feeds_dir.glob("*.xml"))


def is_atom(template: str) -> bool:
    """True when the template's root element is an Atom ``<feed>``."""
    return _ATOM_ROOT.search(template) is not None


def _ago(text: str) -> timedelta:
    return timedelta(seconds=sum(int(n) * _UNIT[u] for n, u in _PART.findall(text)))


def _offset(text: str) -> timezone:
    sign = -1 if text[0] == "-" else 1
    hours, minutes = int(text[1:3]), int(text[4:6])
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def format_time(when: datetime, *, atom: bool) -> str:
    """``when`` (timezone-aware) as RFC 3339 (Atom) or RFC 822 (RSS)."""
    if when.tzinfo is None:
        raise ValueError("format_time needs a timezone-aware datetime")
    if atom:
        text = when.isoformat(timespec="seconds")
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    return format_datetime(when, usegmt=when.tzinfo == UTC)


def render(template: str, now: datetime, *, atom: bool | None = None) -> str:
    """The template with every ``{{pub:-…}}`` placeholder replaced by a time before ``now``.

    Raises ValueError for a naive ``now`` or for a ``{{…}}`` placeholder it does not know.
    """
    if now.tzinfo is None:
        raise ValueError("render needs a timezone-aware 'now'")
    now = now.replace(microsecond=0)
    as_atom = is_atom(template) if atom is None else atom

    def replace(m: re.Match[str]) -> str:
        when = (now - _ago(m.group("ago"))).astimezone(UTC)
        if m.group("offset"):
            when = when.astimezone(_offset(m.group("offset")))
        return format_time(when, atom=as_atom)

    out = _PLACEHOLDER.sub(replace, template)
    if leftover := _LEFTOVER.search(out):
        raise ValueError(f"unknown placeholder {leftover.group()!r}")
    return out


@dataclass(frozen=True, slots=True)
class RenderedFeed:
    """One feed as served: body, validators and media type."""

    name: str
    body: bytes
    etag: str
    last_modified: datetime
    content_type: str


def render_feed(name: str, now: datetime, feeds_dir: Path = FEEDS_DIR) -> RenderedFeed:
    """Render ``feeds_dir/NAME.xml`` at ``now``."""
    template = (feeds_dir / f"{name}.xml").read_text(encoding="utf-8")
    atom = is_atom(template)
    body = render(template, now, atom=atom).encode("utf-8")
    kind = "atom" if atom else "rss"
    return RenderedFeed(
        name=name,
        body=body,
        etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        last_modified=now.astimezone(UTC).replace(microsecond=0),
        content_type=f"application/{kind}+xml; charset=utf-8",
    )


class DemoServer(ThreadingHTTPServer):
    """An HTTP server holding the rendered demo feeds."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], feeds: dict[str, RenderedFeed], *, verbose: bool = False
    ) -> None:
        super().__init__(address, _Handler)
        self.feeds = feeds
        self.verbose = verbose

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"


def _not_modified(
    feed: RenderedFeed, if_none_match: str | None, if_modified_since: str | None
) -> bool:
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or feed.etag in tags
    if if_modified_since is not None:
        try:
            since = parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return feed.last_modified <= since
    return False


class _Handler(BaseHTTPRequestHandler):
    server: DemoServer
    server_version = "feedwatch-demo/1"

    def do_GET(self) -> None:
        self._respond(with_body=True)

    def do_HEAD(self) -> None:
        self._respond(with_body=False)

    def _respond(self, *, with_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.txt"):
            lines = [f"{self.server.base_url}/{name}.xml" for name in sorted(self.server.feeds)]
            self._send(
                HTTPStatus.OK,
                "text/plain; charset=utf-8",
                "\n".join(lines) + "\n",
                with_body=with_body,
            )
            return
        name = path.removeprefix("/").removesuffix(".xml")
        feed = self.server.feeds.get(name) if path.endswith(".xml") else None
        if feed is None:
            self._send(
                HTTPStatus.NOT_FOUND,
                "text/plain; charset=utf-8",
                "no such feed\n",
                with_body=with_body,
            )
            return
        validators = {
            "ETag": feed.etag,
            "Last-Modified": format_datetime(feed.last_modified, usegmt=True),
            "Cache-Control": "max-age=60",
        }
        if _not_modified(
            feed, self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
        ):
            self.send_response(HTTPStatus.NOT_MODIFIED)
            for key, value in validators.items():
                self.send_header(key, value)
            self.end_headers()
            return
        self._send(
            HTTPStatus.OK, feed.content_type, feed.body, with_body=with_body, headers=validators
        )

    def _send(
        self,
        status: HTTPStatus,
        content_type: str,
        body: str | bytes,
        *,
        with_body: bool,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if with_body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


def serve(
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    now: datetime | None = None,
    feeds_dir: Path = FEEDS_DIR,
    verbose: bool = False,
) -> tuple[DemoServer, str]:
    """Render the demo feeds at ``now`` and serve them from a background thread.

    Returns the server and its base URL (``http://127.0.0.1:PORT``). Stop it with ``stop()``.
    """
    at = now or datetime.now(UTC)
    feeds = {name: render_feed(name, at, feeds_dir) for name in feed_names(feeds_dir)}
    server = DemoServer((host, port), feeds, verbose=verbose)
    thread = threading.Thread(target=server.serve_forever, name="demo-feeds", daemon=True)
    thread.start()
    return server, server.base_url


def stop(server: DemoServer) -> None:
    """Stop a server started by ``serve()`` and close its socket."""
    server.shutdown()
    server.server_close()


def _write_port_file(path: Path, port: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{port}\n", encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """Command line: serve until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description="Serve the feedwatch demo feeds on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: any free port)")
    parser.add_argument(
        "--write-port-file",
        type=Path,
        metavar="PATH",
        help="write the chosen port to PATH once listening",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    server, base_url = serve(args.port, verbose=args.verbose)
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    if args.write_port_file:
        _write_port_file(args.write_port_file, server.server_port)
    print(base_url, flush=True)
    for name in sorted(server.feeds):
        print(f"  {base_url}/{name}.xml", file=sys.stderr)
    print("serving until Ctrl-C (SIGINT) or SIGTERM", file=sys.stderr, flush=True)
    while not done.wait(1.0):
        pass
    stop(server)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
