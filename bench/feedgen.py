"""Synthetic news feeds and a fast HTTP server for them (the polling benchmark's feed source).

``build_feeds(n_feeds, n_items)`` makes deterministic RSS 2.0 documents: every item has a
guid, a pubDate, a link, a headline-like title and a ~1.5 KB description of news-like prose
(sentences from a word-level Markov chain trained on the three seed articles, whose copies are
in tests/data/stories/pairs.yaml, so the bytes are the same on every machine), wrapped in <p>
tags and escaped the way real feeds ship HTML.

``python bench/feedgen.py serve --feeds 1000 --items 50 [--port 0]`` serves them from memory on
127.0.0.1 with an asyncio server written for speed: HTTP/1.1 keep-alive, pipelining, response
bytes (headers + body) built once at start-up, a strong ETag and a Last-Modified per feed. It
prints ``READY <port> <feeds> <bytes>`` on stdout when it listens. Control paths:

* ``GET /_mode/honour`` - answer 304 when If-None-Match / If-Modified-Since match (default);
* ``GET /_mode/ignore`` - ignore validators: always 200 with the same bytes;
* ``GET /_stats`` - JSON counters since the last ``/_stats/reset``: requests, 200s, 304s,
  404s, body bytes sent, connections opened.

``python bench/feedgen.py check --port P`` measures the running server's own throughput with a
raw-socket keep-alive client (no HTTP library in the way).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import html
import json
import os
import random
import re
import socket
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

SEEDS = Path(__file__).resolve().parent.parent / "tests" / "data" / "stories" / "pairs.yaml"
FALLBACK_TEXT = """
Ukrainian forces pushed deeper into the Kursk region on Tuesday, officials in Kyiv said, as
Moscow accused Western governments of sending weapons and mercenaries to support the offensive.
The defence ministry in Moscow said its troops had repelled several attacks near the border.
Analysts said the operation was meant to force Russia to move reserves away from the east.
North Korean troops were deployed to the region, according to intelligence officials in Seoul.
The United States announced a new package of military aid, including air defence systems.
European leaders met in Brussels to discuss sanctions and the reconstruction of Ukraine.
"""
SOURCES = ("Reuters", "AP", "AFP", "BBC", "Kyiv Independent", "Yonhap", "DW", "Al Jazeera")
SECTIONS = ("world", "europe", "asia", "politics", "defence", "economy")
LAST_MODIFIED = datetime(2025, 8, 6, 12, 0, tzinfo=UTC)
# Items are dated before LAST_MODIFIED, or before now when FEEDGEN_RECENT=1 (bench/poll.py
# --recent): then every item is inside the story window and a cold poll clusters them all.
RECENT = os.environ.get("FEEDGEN_RECENT") == "1"
ITEMS_UNTIL = datetime.now(UTC) if RECENT else LAST_MODIFIED
_WORD = re.compile(r"[A-Za-z][A-Za-z'’\-]*|\d+(?:[.,]\d+)*|[.,;:?!]")


# -- text -------------------------------------------------------------------------------------


def seed_text() -> str:
    """The seed articles' titles and texts (``*-seed`` items of the story pairs)."""
    from ruamel.yaml import YAML

    items = YAML(typ="safe").load(SEEDS.read_text(encoding="utf-8"))["items"]
    texts = [f"{v['title']}\n{v['text']}" for k, v in sorted(items.items()) if k.endswith("-seed")]
    return "\n".join(texts) or FALLBACK_TEXT


class Prose:
    """A first-order word Markov chain: sentences that read like the seed articles."""

    def __init__(self, text: str, rng: random.Random) -> None:
        words = _WORD.findall(text)
        self.rng = rng
        self.next: dict[str, list[str]] = {}
        for a, b in zip(words, words[1:], strict=False):
            self.next.setdefault(a, []).append(b)
        self.starts = [
            b for a, b in zip(words, words[1:], strict=False) if a == "." and b[0].isupper()
        ]
        self.starts = self.starts or [w for w in words if w[0].isupper()]

    def sentence(self, lo: int = 12, hi: int = 30) -> str:
        rng = self.rng
        out = [rng.choice(self.starts)]
        limit = rng.randint(lo, hi)
        while len(out) < limit * 2:
            follow = self.next.get(out[-1])
            if not follow:
                break
            w = rng.choice(follow)
            if w in ".?!":
                if len(out) >= lo:
                    break
                w = ","
            out.append(w)
        text = " ".join(out)
        text = re.sub(r" ([.,;:?!])", r"\1", text).rstrip(",;: ")
        return text + "."

    def title(self) -> str:
        words = self.sentence(6, 12).rstrip(".").split()[: self.rng.randint(6, 12)]
        return " ".join(w[:1].upper() + w[1:] if len(w) > 3 else w for w in words).rstrip(",;:")


# -- feeds ------------------------------------------------------------------------------------


def feed_path(i: int) -> str:
    return f"/f{i:04d}.xml"


def build_feed(
    i: int, n_items: int, pool: list[str], titles: list[str], rng: random.Random
) -> bytes:
    """One RSS 2.0 document: ``n_items`` news items, newest first."""
    name = f"f{i:04d}"
    section = SECTIONS[i % len(SECTIONS)]
    base = ITEMS_UNTIL - timedelta(minutes=(i % 60) if RECENT else 7 * i)
    parts = [
        (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">\n<channel>\n'
            f"<title>Bench News {i:04d}: {section.title()}</title>\n"
            f"<link>https://news{i % 50}.example.org/{section}/</link>\n"
            f"<description>Synthetic {section} news for the feedwatch benchmark.</description>\n"
            f"<language>en</language>\n<lastBuildDate>{format_datetime(base, usegmt=True)}"
            "</lastBuildDate>\n<ttl>10</ttl>\n"
        )
    ]
    for j in range(n_items):
        when = base - timedelta(minutes=23 * j + rng.randint(0, 20))
        paras, size = [], 0
        while size < 1450:
            para = " ".join(rng.choice(pool) for _ in range(rng.randint(2, 4)))
            paras.append(f"<p>{para}</p>")
            size += len(para)
        body = html.escape("".join(paras), quote=False)
        slug = f"{name}-{j:03d}"
        parts.append(
            "<item>\n"
            f"<title>{html.escape(rng.choice(titles), quote=False)}</title>\n"
            f"<link>https://news{i % 50}.example.org/{section}/{when:%Y/%m/%d}/{slug}</link>\n"
            f'<guid isPermaLink="false">urn:bench:{slug}</guid>\n'
            f"<pubDate>{format_datetime(when, usegmt=True)}</pubDate>\n"
            f"<dc:creator>{rng.choice(SOURCES)}</dc:creator>\n"
            f"<category>{section}</category>\n"
            f"<description>{body}</description>\n"
            "</item>\n"
        )
    parts.append("</channel>\n</rss>\n")
    return "".join(parts).encode()


def build_feeds(n_feeds: int, n_items: int, seed: int = 1) -> dict[str, bytes]:
    """Path -> body for ``n_feeds`` feeds of ``n_items`` items; the same bytes for the same args."""
    rng = random.Random(seed)
    prose = Prose(seed_text(), rng)
    pool = [prose.sentence() for _ in range(4000)]
    titles = [prose.title() for _ in range(3000)]
    return {feed_path(i): build_feed(i, n_items, pool, titles, rng) for i in range(n_feeds)}


# -- server -----------------------------------------------------------------------------------


class Feeds:
    """Pre-built responses and the server's mode and counters (one event loop: no locks)."""

    def __init__(self, bodies: dict[str, bytes]) -> None:
        lm = format_datetime(LAST_MODIFIED, usegmt=True)
        self.last_modified = LAST_MODIFIED
        self.full: dict[str, bytes] = {}
        self.not_modified: dict[str, bytes] = {}
        self.etags: dict[str, str] = {}
        for path, body in bodies.items():
            etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            common = f"ETag: {etag}\r\nLast-Modified: {lm}\r\n"
            self.etags[path] = etag
            self.full[path] = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\n{common}\r\n"
            ).encode() + body
            self.not_modified[path] = f"HTTP/1.1 304 Not Modified\r\n{common}\r\n".encode()
        self.honour = True
        self.stats = self._zero()

    @staticmethod
    def _zero() -> dict[str, int]:
        return {"requests": 0, "200": 0, "304": 0, "404": 0, "bytes": 0, "connections": 0}

    def _fresh(self, path: str, headers: dict[str, str]) -> bool:
        inm = headers.get("if-none-match")
        if inm is not None:
            tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
            return self.etags[path] in tags or "*" in tags
        ims = headers.get("if-modified-since")
        if ims:
            try:
                return parsedate_to_datetime(ims) >= self.last_modified
            except (TypeError, ValueError):
                return False
        return False

    def respond(self, path: str, headers: dict[str, str]) -> bytes:
        st = self.stats
        path = path.split("?", 1)[0]
        if path in self.full:
            st["requests"] += 1
            if self.honour and self._fresh(path, headers):
                st["304"] += 1
                return self.not_modified[path]
            st["200"] += 1
            resp = self.full[path]
            st["bytes"] += len(resp)
            return resp
        if path.startswith("/_"):
            return self._control(path)
        st["requests"] += 1
        st["404"] += 1
        return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"

    def _control(self, path: str) -> bytes:
        if path == "/_mode/honour":
            self.honour = True
        elif path == "/_mode/ignore":
            self.honour = False
        elif path == "/_stats/reset":
            self.stats = self._zero()
        body = json.dumps({**self.stats, "honour": self.honour}).encode()
        return (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body


class _Conn(asyncio.Protocol):
    def __init__(self, feeds: Feeds) -> None:
        self.feeds = feeds
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.feeds.stats["connections"] += 1
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        assert self.transport is not None
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    self.transport.close()
                return
            head, self.buf = self.buf[:end].decode("latin-1"), self.buf[end + 4 :]
            lines = head.split("\r\n")
            try:
                method, target, version = lines[0].split(" ", 2)
            except ValueError:
                self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                self.transport.close()
                return
            headers: dict[str, str] = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            resp = self.feeds.respond(target, headers)
            if method == "HEAD":
                resp = resp[: resp.find(b"\r\n\r\n") + 4]
            self.transport.write(resp)
            conn = headers.get("connection", "").lower()
            if conn == "close" or (version == "HTTP/1.0" and conn != "keep-alive"):
                self.transport.close()
                return


async def serve(feeds: Feeds, port: int, total: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Conn(feeds), "127.0.0.1", port, backlog=1024, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"READY {bound} {len(feeds.full)} {total}", flush=True)
    async with server:
        await server.serve_forever()


# -- throughput check -------------------------------------------------------------------------


def _raw_client(port: int, paths: list[str], extra: str, out: list[int]) -> None:
    """Keep-alive GETs over one socket, reading each response fully (Content-Length framed)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = s.makefile("rb")
    n = 0
    for p in paths:
        s.sendall(f"GET {p} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode())
        length = 0
        status = f.readline()
        while (line := f.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        if b" 304 " not in status:
            f.read(length)
        n += 1
    s.close()
    out.append(n)


def get_json(port: int, path: str) -> dict[str, object]:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    result: dict[str, object] = json.loads(data.split(b"\r\n\r\n", 1)[1])
    return result


def check(port: int, n_feeds: int, requests: int = 4000, conns: int = 4) -> dict[str, float]:
    """Responses/s the server sustains for full bodies and for 304s (``conns`` raw clients)."""
    etags = get_json(port, "/_stats")  # warms the connection path
    del etags
    out: dict[str, float] = {}
    paths = [feed_path(i % n_feeds) for i in range(requests)]
    chunks = [paths[k::conns] for k in range(conns)]
    for label, extra, mode in (
        ("full_200_per_s", "", "/_mode/ignore"),
        (
            "not_modified_304_per_s",
            f"If-Modified-Since: {format_datetime(LAST_MODIFIED, usegmt=True)}\r\n",
            "/_mode/honour",
        ),
    ):
        get_json(port, mode)
        done: list[int] = []
        threads = [
            threading.Thread(target=_raw_client, args=(port, c, extra, done)) for c in chunks
        ]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out[label] = round(sum(done) / (time.perf_counter() - t0))
    get_json(port, "/_mode/honour")
    get_json(port, "/_stats/reset")
    return out


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve the feeds on 127.0.0.1")
    s.add_argument("--feeds", type=int, default=1000)
    s.add_argument("--items", type=int, default=50)
    s.add_argument("--port", type=int, default=0)
    c = sub.add_parser("check", help="measure a running server's throughput")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--feeds", type=int, default=1000)
    w = sub.add_parser("write", help="write the feeds as files into a folder")
    w.add_argument("folder", type=Path)
    w.add_argument("--feeds", type=int, default=10)
    w.add_argument("--items", type=int, default=50)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.cmd == "serve":
        bodies = build_feeds(args.feeds, args.items)
        feeds = Feeds(bodies)
        total = sum(len(b) for b in bodies.values())
        del bodies
        try:
            asyncio.run(serve(feeds, args.port, total))
        except KeyboardInterrupt:
            pass
    elif args.cmd == "check":
        print(json.dumps(check(args.port, args.feeds)))
    else:
        args.folder.mkdir(parents=True, exist_ok=True)
        for path, body in build_feeds(args.feeds, args.items).items():
            (args.folder / path.lstrip("/")).write_bytes(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
