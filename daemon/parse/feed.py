"""Feed bytes → ``ParsedFeed`` → ``Item``s, with feedparser (RSS, Atom, RDF, CDF) or JSON Feed.

feedparser is always given bytes in a ``BytesIO`` (a bare ``bytes`` value that happens to be a
path would be *opened* by feedparser; a URL would be fetched), with the response headers, and
with ``sanitize_html=False, resolve_relative_uris=False``: feedwatch reduces every HTML field
to plain text, so sanitising it first is wasted work. Measured on the reference machine
(Python 3.11.7, feedparser 6.0.14; best of 31 runs, medians within 10 %) on a 50-item RSS 2.0
feed of 179 KB built from the seed articles, each item with a 1.3 KB HTML description and a
2.4 KB ``content:encoded`` with links and images::

    feedparser, sanitize_html=True,  resolve_relative_uris=True    49.6 ms  (1,000 items/s)
    feedparser, sanitize_html=False, resolve_relative_uris=False   11.7 ms  (4,270 items/s)
    parse_items (the above + charset pass, DOCTYPE scan, normalise) 15.4 ms  (3,250 items/s)

The gain grows with the amount of HTML per item (the sanitiser and the URI resolver re-parse
every HTML field); ``parse_items``' extra 3.7 ms is mostly ``html_to_text`` over 3.7 KB per item.
``parse_items`` now tries ``daemon.parse.fast`` (lxml) first, which gives the same items for
well-formed RSS, Atom and RDF about 4.7 times faster, and falls back to the above.

Entity expansion (billion laughs, quadratic blow-up): feedparser's fallback "loose" parser
expands entities declared in the DOCTYPE's internal subset without any limit (a 0.14 MB feed
needed more than 3 GB). So before feedparser parses anything, ``_defuse`` removes the internal
subset of a DOCTYPE in the prolog when it declares entities (``<!DOCTYPE rss [ ... ]>`` becomes
``<!DOCTYPE rss >``), with one forward scan. References to the removed entities stay as literal
text. To see exactly the characters feedparser will see, the scan runs on the body *after*
feedparser's own charset detection (``feedparser.encodings.convert_to_utf8``: BOMs, UTF-16/32,
EBCDIC, the HTTP charset, the XML declaration; an internal function, stable through 6.0.x,
and pyproject pins feedparser < 7); feedparser then gets those UTF-8 bytes.
One exception to feedparser's charset rules: a byte-order mark (or a NUL-interleaved first "<")
decides the encoding before the HTTP charset does, as XML 1.0 appendix F and WHATWG say;
feedparser tries the HTTP or default charset first and reads UTF-16 as (NUL-riddled) UTF-8.

Policy (reader's "bozo" rule): a feed feedparser reads despite an error (``bozo``) is used, and
``ParsedFeed.bozo`` says what was wrong; a body that yields no feed version and no entries
(an HTML page, garbage, an empty body) raises ``ParseError``.

``parse_items`` is the entry point the pipeline runs in a process pool: it is a top-level
function whose arguments and results pickle, and it uses no state a fresh interpreter lacks.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import feedparser
from feedparser.encodings import convert_to_utf8

from daemon.errors import ParseError
from daemon.parse.fast import read_items
from daemon.parse.feedlinks import FeedLinks, body_links, header_links, merge
from daemon.parse.jsonfeed import looks_like_json, read_json_feed
from daemon.parse.normalize import normalize
from daemon.parse.parsed import ParsedFeed
from daemon.parse.text import html_to_text, one_line
from daemon.parse.urls import absolute_link
from daemon.types import Item

REFUSED = "feed declares entities in its DOCTYPE; refused"
_KINDS = (
    ("rss10", "rdf"),
    ("rss090", "rdf"),
    ("rss", "rss"),
    ("atom", "atom"),
    ("cdf", "cdf"),
    ("json", "json"),
)
# (prefix, codec, bytes to skip): byte-order marks, then a first "<" in a wide encoding without
# a BOM (invalid XML, but unambiguous: no ASCII-compatible document starts with a NUL).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le", 4),
    (codecs.BOM_UTF32_BE, "utf-32-be", 4),
    (codecs.BOM_UTF16_LE, "utf-16-le", 2),
    (codecs.BOM_UTF16_BE, "utf-16-be", 2),
    (codecs.BOM_UTF8, "utf-8", 3),
    (b"\x00\x00\x00<", "utf-32-be", 0),
    (b"<\x00\x00\x00", "utf-32-le", 0),
    (b"\x00<", "utf-16-be", 0),
    (b"<\x00", "utf-16-le", 0),
)


def parse_items(
    feed: str,
    body: bytes,
    headers: Mapping[str, str],
    url: str,
    tags: tuple[str, ...] = (),
) -> list[Item]:
    """The normalised items of ``body``; raises ParseError. Safe to run in a worker process.

    Well-formed RSS and Atom go through the lxml fast path (``daemon.parse.fast``); whatever it
    declines goes through feedparser, with the same items either way.
    """
    prepared = _prepare(feed, body, headers, url)
    if isinstance(prepared, ParsedFeed):
        return normalize(prepared, feed, tags)
    if prepared.fast:
        items = read_items(prepared.data, prepared.base, feed, tags)
        if items is not None:
            return items
    return normalize(_feedparse(feed, prepared), feed, tags)


def parse_items_links(
    feed: str,
    body: bytes,
    headers: Mapping[str, str],
    url: str,
    tags: tuple[str, ...] = (),
) -> tuple[list[Item], FeedLinks]:
    """``parse_items`` plus the feed's WebSub links (``daemon.parse.feedlinks``): the ``Link:``
    header's, else the document's. Safe to run in a worker process."""
    prepared = _prepare(feed, body, headers, url)
    base = prepared.base
    header = header_links({k.lower(): v for k, v in headers.items()}.get("link"), base)
    if isinstance(prepared, ParsedFeed):
        items = normalize(prepared, feed, tags)
        return items, merge(header, FeedLinks(prepared.hubs, prepared.self_url))
    if prepared.fast:
        fast = read_items(prepared.data, prepared.base, feed, tags)
        if fast is not None:
            return fast, merge(header, body_links(prepared.data, prepared.base))
    parsed = _feedparse(feed, prepared)
    return normalize(parsed, feed, tags), merge(header, FeedLinks(parsed.hubs, parsed.self_url))


def fast_items(
    feed: str, body: bytes, headers: Mapping[str, str], url: str, tags: tuple[str, ...] = ()
) -> list[Item] | None:
    """The fast path alone (tests, benchmarks): its items, or None where it declines."""
    prepared = _prepare(feed, body, headers, url)
    if isinstance(prepared, ParsedFeed) or not prepared.fast:
        return None
    return read_items(prepared.data, prepared.base, feed, tags)


def parse_feed(feed: str, body: bytes, headers: Mapping[str, str], url: str) -> ParsedFeed:
    """Read ``body`` (fetched from ``url`` with response ``headers``) with feedparser (or as
    JSON Feed); raises ParseError."""
    prepared = _prepare(feed, body, headers, url)
    if isinstance(prepared, ParsedFeed):
        return prepared
    return _feedparse(feed, prepared)


@dataclass(slots=True)
class _Prepared:
    """An XML body after the charset pass and defusing: the bytes feedparser is given."""

    data: bytes
    hdrs: dict[str, str]
    base: str
    problems: list[str]
    fast: bool  # an encoding was found (feedparser tries its strict parser), nothing defused


def _prepare(
    feed: str, body: bytes, headers: Mapping[str, str], url: str
) -> ParsedFeed | _Prepared:
    """A JSON Feed read, or an XML body ready for feedparser; raises ParseError."""
    hdrs = {k.lower(): v for k, v in headers.items()}
    base = _base(url, hdrs.get("content-location"))
    if not body.strip():
        raise ParseError(feed, "empty body")
    if looks_like_json(body, hdrs.get("content-type", "")):
        version, meta, entries = read_json_feed(feed, body)
        return _parsed(meta, entries, version, None, base)

    if "content-type" not in hdrs:
        # With other headers but no Content-Type, feedparser would fall back to ISO-8859-1
        # (RFC 2616) and mangle every UTF-8 feed without an encoding declaration.
        hdrs["content-type"] = "application/xml"
    body = _decode_bom(body, hdrs)
    converted: dict[str, Any] = {}
    data = convert_to_utf8(hdrs, body, converted)
    problems = [_describe(converted["bozo_exception"])] if converted.get("bozo") else []
    if converted.get("encoding"):
        hdrs["content-type"] = "application/xml; charset=utf-8"  # data is UTF-8 now
    data, defused = _defuse(feed, data)
    if defused:
        problems.append("entity declarations removed from the DOCTYPE")
    hdrs["content-location"] = base
    return _Prepared(data, hdrs, base, problems, bool(converted.get("encoding")) and not defused)


def _feedparse(feed: str, prepared: _Prepared) -> ParsedFeed:
    data, hdrs, base, problems = prepared.data, prepared.hdrs, prepared.base, prepared.problems
    try:
        d = feedparser.parse(
            io.BytesIO(data),
            response_headers=hdrs,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as e:  # feedparser's own bugs on hostile input: this feed's problem
        raise ParseError(feed, f"feedparser failed: {_describe(e)}") from e
    version = str(d.get("version") or "")
    entries = d.get("entries") or []
    if d.get("bozo") and d.get("bozo_exception") is not None:
        problems.append(_describe(d["bozo_exception"]))
    if not version and not entries:
        raise ParseError(feed, _unreadable(data, problems))
    return _parsed(d.get("feed") or {}, entries, version, "; ".join(problems) or None, base)


def _parsed(
    meta: Mapping[str, Any],
    entries: list[dict[str, Any]],
    version: str,
    bozo: str | None,
    base: str,
) -> ParsedFeed:
    hubs: list[str] = []
    self_url = None
    for link in meta.get("links") or ():
        href = link.get("href") if isinstance(link, Mapping) else None
        if not isinstance(href, str) or not (href := absolute_link(base, href) or ""):
            continue
        if link.get("rel") == "hub" and href not in hubs:
            hubs.append(href)
        elif link.get("rel") == "self" and self_url is None:
            self_url = href
    title = meta.get("title")
    return ParsedFeed(
        title=one_line(html_to_text(title)) if isinstance(title, str) else "",
        link=absolute_link(base, meta.get("link")),
        entries=tuple(entries),
        kind=next((kind for prefix, kind in _KINDS if version.startswith(prefix)), "unknown"),
        version=version,
        hubs=tuple(hubs),
        self_url=self_url,
        bozo=bozo,
        base=base,
    )


def _base(url: str, content_location: str | None) -> str:
    """The URL relative links resolve against: Content-Location (if http(s)) else ``url``."""
    if content_location:
        resolved = absolute_link(url, content_location)
        if resolved is not None:
            return resolved
    return url


def _decode_bom(body: bytes, hdrs: dict[str, str]) -> bytes:
    """A body with a byte-order mark as UTF-8 (and ``hdrs`` saying so); else ``body``.

    The BOM is authoritative (XML 1.0 appendix F, WHATWG encoding sniffing). feedparser would
    try the HTTP or default charset first, and UTF-16 text of ASCII characters happens to be
    valid UTF-8 (with NULs), so a UTF-16 feed without an encoding declaration failed.
    """
    for prefix, codec, skip in _BOMS:
        if body.startswith(prefix):
            try:
                text = body[skip:].decode(codec)
            except UnicodeDecodeError:
                return body  # let feedparser's fallbacks have a go
            hdrs["content-type"] = "application/xml; charset=utf-8"
            return text.encode("utf-8", "surrogatepass")
    return body


def _describe(exc: object) -> str:
    text = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(exc)
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:199] + "…"


def _unreadable(data: bytes, problems: list[str]) -> str:
    head = data[:4096].lower()
    if b"<html" in head or b"<!doctype html" in head:
        return "an HTML page, not a feed"
    detail = f" ({problems[-1]})" if problems else ""
    return f"not a feed: no RSS, Atom, RDF or JSON Feed found{detail}"


# --- DOCTYPE defusing ------------------------------------------------------------------------

# What matters in the prolog: comments, processing instructions, DOCTYPE, a stray ENTITY
# declaration, and "<" + a word character (the root element, where the prolog ends).
_PROLOG_TOKEN = re.compile(rb"<(?:!--|\?|!DOCTYPE|!ENTITY|\w)", re.IGNORECASE)
_ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)
_ID_STEP = re.compile(rb"[\"'\[>]")
_SUBSET_STEP = re.compile(rb"[\"'\]]|<!--|<\?")
_CLOSERS = {b'"': b'"', b"'": b"'", b"<!--": b"-->", b"<?": b"?>"}


def _defuse(feed: str, data: bytes) -> tuple[bytes, bool]:
    """``data`` without the entity-declaring internal subsets of prolog DOCTYPEs.

    Returns ``(data, True)`` if something was removed. Raises ParseError (``REFUSED``) for
    declarations that cannot be cut out cleanly: an unterminated internal subset, or an
    ``<!ENTITY`` outside any DOCTYPE (feedparser's own prolog regex would pick one up even
    inside a comment). The prolog scanned here reaches at least as far as both feedparser's
    (up to the first "<" + word character) and expat's (up to the root element). Linear: every
    step moves forward and nothing backtracks.
    """
    out: list[bytes] = []
    start = pos = 0
    while (m := _PROLOG_TOKEN.search(data, pos)) is not None:
        token = m.group().upper()
        if token in (b"<!--", b"<?"):
            closer = _CLOSERS[token]
            end = data.find(closer, m.end())
            pos = len(data) if end < 0 else end + len(closer)
            if _ENTITY.search(data, m.start(), pos):
                raise ParseError(feed, REFUSED + " (outside a DOCTYPE)")
        elif token == b"<!DOCTYPE":
            at, is_subset = _doctype_body(data, m.end())
            pos = at + 1
            if not is_subset:
                continue
            close_at = _subset_end(data, at + 1)
            if close_at is None:
                if _ENTITY.search(data, at):
                    raise ParseError(feed, REFUSED + " (unterminated DOCTYPE)")
                break
            if _ENTITY.search(data, at, close_at):
                out.append(data[start:at])  # keep "<!DOCTYPE name ids", drop "[ ... ]"
                start = close_at + 1
            pos = close_at + 1
        elif token == b"<!ENTITY":
            raise ParseError(feed, REFUSED + " (outside a DOCTYPE)")
        else:  # the root element: the prolog is over
            break
    if not out:
        return data, False
    out.append(data[start:])
    return b"".join(out), True


def _doctype_body(data: bytes, pos: int) -> tuple[int, bool]:
    """(index of the "[" opening the internal subset, True) or (index of the closing ">",
    False) for the DOCTYPE whose name starts at ``pos``; (len(data), False) if neither."""
    while (m := _ID_STEP.search(data, pos)) is not None:
        token = m.group()
        if token in b"[>":
            return m.start(), token == b"["
        end = data.find(token, m.end())  # a quoted public/system id may contain [ or >
        if end < 0:
            break
        pos = end + 1
    return len(data), False


def _subset_end(data: bytes, pos: int) -> int | None:
    """Index of the ``]`` closing an internal subset that starts at ``pos``; None if none."""
    while (m := _SUBSET_STEP.search(data, pos)) is not None:
        token = m.group()
        if token == b"]":
            return m.start()
        closer = _CLOSERS[token]
        end = data.find(closer, m.end())
        if end < 0:
            return None
        pos = end + len(closer)
    return None
