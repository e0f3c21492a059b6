"""WebSub discovery: a feed's ``rel="hub"`` and ``rel="self"`` links. Pure functions, no I/O.

Two sources, as the WebSub recommendation (W3C, 2018, section 4) orders them: the HTTP
``Link:`` header first, then the feed document itself — Atom's ``<link rel="hub">`` in
``<feed>``, RSS's ``<atom:link rel="hub">`` in ``<channel>`` (RSS 1.0 in its ``<channel>``),
JSON Feed's ``hubs`` and ``feed_url``. Each field comes from the header when it has one, else
from the body.

``body_links`` reads the feed-level ``atom:link`` elements with lxml (no entities, no
network, no DTD) and stops at the first entry, so it costs little on a large feed; the
feedparser path gets the same links from feedparser's ``feed.links`` (``daemon.parse.feed``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from urllib.parse import urljoin

from lxml import etree

from daemon.parse.urls import absolute_link

ATOM = "http://www.w3.org/2005/Atom"
_ENTRIES = frozenset({"item", "entry"})
_LINK = f"{{{ATOM}}}link"


@dataclass(frozen=True, slots=True)
class FeedLinks:
    """The hubs a feed advertises (in document order, no duplicates) and its self URL."""

    hubs: tuple[str, ...] = ()
    self_url: str | None = None

    @property
    def usable(self) -> bool:
        """Both a hub and a topic: enough to subscribe."""
        return bool(self.hubs) and self.self_url is not None


def merge(header: FeedLinks, body: FeedLinks) -> FeedLinks:
    """Each field from the ``Link:`` header if it has one, else from the body."""
    return FeedLinks(header.hubs or body.hubs, header.self_url or body.self_url)


def collect(pairs: list[tuple[str, str]], base: str) -> FeedLinks:
    """(rel, href) pairs → ``FeedLinks``: hrefs resolved against ``base``, http(s) only."""
    hubs: list[str] = []
    self_url: str | None = None
    for rel, href in pairs:
        url = absolute_link(base, href)
        if not url:
            continue
        rels = rel.lower().split()
        if "hub" in rels and url not in hubs:
            hubs.append(url)
        if "self" in rels and self_url is None:
            self_url = url
    return FeedLinks(tuple(hubs), self_url)


def header_links(value: str | None, base: str) -> FeedLinks:
    """The hub and self links of an HTTP ``Link:`` header (RFC 8288; several headers arrive
    joined by commas). Malformed parts are skipped; never raises."""
    return collect(list(_link_header_pairs(value or "")), base)


def _link_header_pairs(text: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        start = text.find("<", i)
        if start < 0:
            break
        end = text.find(">", start + 1)
        if end < 0:
            break
        href = text[start + 1 : end].strip()
        rel, i = _params(text, end + 1)
        if rel is not None:
            pairs.append((rel, href))
    return pairs


def _params(text: str, i: int) -> tuple[str | None, int]:
    """Read ``; name=value`` parameters from ``i`` up to the next top-level comma; returns
    the ``rel`` value and the index after the comma."""
    rel: str | None = None
    n = len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            break
        if text[i] == ",":
            return rel, i + 1
        if text[i] != ";":
            # Garbage: skip to the next link value.
            nxt = text.find(",", i)
            return rel, n if nxt < 0 else nxt + 1
        i += 1
        eq = i
        while eq < n and text[eq] not in "=;,":
            eq += 1
        name = text[i:eq].strip().lower()
        value = ""
        i = eq
        if i < n and text[i] == "=":
            i += 1
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] == '"':
                j = i + 1
                chars: list[str] = []
                while j < n and text[j] != '"':
                    if text[j] == "\\" and j + 1 < n:
                        j += 1
                    chars.append(text[j])
                    j += 1
                value, i = "".join(chars), j + 1
            else:
                j = i
                while j < n and text[j] not in ";,":
                    j += 1
                value, i = text[i:j].strip(), j
        if name == "rel" and rel is None:
            rel = value
    return rel, n


def _resolve(base: str, xml_base: str | None, href: str) -> str:
    """``href`` against ``xml:base`` (itself against ``base``), as feedparser resolves it."""
    try:
        return urljoin(urljoin(base, xml_base) if xml_base else base, href.strip())
    except ValueError:
        return href


def body_links(data: bytes, base: str) -> FeedLinks:
    """The feed-level Atom ``link`` elements with rel hub/self of an XML feed (UTF-8 or with
    its own encoding declaration), read up to the first entry. Empty on any XML error."""
    pairs: list[tuple[str, str]] = []
    try:
        events = etree.iterparse(
            io.BytesIO(data),
            events=("start",),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
        )
        for _event, el in events:
            if not isinstance(el.tag, str):
                continue
            name = etree.QName(el).localname
            if name in _ENTRIES:
                break
            # Feed-level links are children of the Atom feed or of the RSS / RDF channel.
            parent = el.getparent()
            if el.tag == _LINK and parent is not None:
                if etree.QName(parent).localname in ("feed", "channel"):
                    rel, href = el.get("rel"), el.get("href")
                    if rel and href is not None:
                        pairs.append((rel, _resolve(base, el.base, href)))
    except (etree.LxmlError, ValueError):
        return FeedLinks()
    return collect(pairs, base)
