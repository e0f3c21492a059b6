"""OPML feed lists: read them safely (OPML 1.0 and 2.0), write them (OPML 2.0).

Reading is lxml with no entity resolution, no DTD loading and no network. A file that declares
entities (``<!ENTITY`` in a DOCTYPE, the billion-laughs shape) is refused before it is parsed;
one that gets past that scan (another encoding) is stopped by libxml2's amplification limit or
refused after parsing when its internal DTD declares entities.

Mapping: every ``<outline>`` with an ``xmlUrl`` is a feed (any ``type``: ``rss``, ``atom`` or
none); the other outlines are folders. The folders around a feed and the components of its
OPML 2.0 ``category`` attribute (``/News/Europe,/Kyiv``) become its tags. ``text`` (else
``title``, else the URL's host) becomes its name. Names and tags are slugs: lowercase ASCII
letters, digits, ``-``, ``_`` and ``.``, which is what ``daemon.config.values`` accepts as a name.
Names are unique in a document (``-2``, ``-3``… on collisions); an URL listed twice (a feed in
two folders) is one feed with the tags of both. Outlines whose URL is not http(s) are skipped
and reported in ``OpmlDocument.skipped``; ``feed://`` URLs are read as ``http://``.

Writing groups feeds into one folder per first tag; the other tags go to ``category``, so a
document written here reads back with the same URLs and tags.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from daemon.config.models import FeedConfig
from daemon.errors import ConfigError, Problem

MAX_BYTES = 16 * 1024 * 1024
MAX_SLUG = 60

_CYRILLIC = (
    "а a б b в v г g ґ g д d е e є ye ж zh з z и i і i ї yi й y к k л l м m н n о o п p р r "
    "с s т t у u ф f х kh ц ts ч ch ш sh щ shch ы y э e ю yu я ya ё yo"
).split()
_TRANSLIT = {
    **dict(zip(_CYRILLIC[::2], _CYRILLIC[1::2], strict=True)),
    **{"ъ": "", "ь": "", "ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d"},
    **{"ð": "d", "þ": "th", "ı": "i"},
}
_APOSTROPHES = re.compile("['\u2019\u02bc`]")
_SEPARATORS = re.compile(r"[^a-z0-9_.]+")
_DASH_RUN = re.compile(r"[-_.]*-[-_.]*")
_ENTITY_DECL = re.compile(rb"<!ENTITY")
_XML_POSITION = re.compile(r", line \d+, column \d+$")


@dataclass(frozen=True, slots=True)
class OpmlFeed:
    """One feed read from OPML. ``line`` is where its (first) outline starts."""

    name: str
    url: str
    tags: tuple[str, ...]
    title: str
    line: int


@dataclass(slots=True)
class _Found:
    text: str
    tags: list[str]
    line: int


@dataclass(frozen=True, slots=True)
class OpmlDocument:
    """The feeds of one OPML file.

    ``skipped``: outlines left out (their URL is not http or https), located.
    ``merged``: outlines that repeated an URL already listed (their tags were merged).
    """

    source: str
    title: str
    feeds: tuple[OpmlFeed, ...]
    skipped: tuple[Problem, ...] = ()
    merged: int = 0


# -- names ------------------------------------------------------------------------------------


def slug(text: str) -> str:
    """``text`` as a name: lowercase ASCII, digits, ``-_.``; "" if nothing is left.

    Accents are dropped (``é`` → ``e``), Cyrillic is transliterated (``Київ`` → ``kiyiv``),
    other scripts are dropped, runs of anything else become one ``-``.
    """
    s = "".join(_TRANSLIT.get(ch, ch) for ch in text.lower())
    s = "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))
    s = _SEPARATORS.sub("-", _APOSTROPHES.sub("", s.lower()))
    s = _DASH_RUN.sub("-", s).strip("-_.")
    if len(s) > MAX_SLUG:
        cut = s[:MAX_SLUG]
        s = (cut[: cut.rindex("-")] if "-" in cut[MAX_SLUG // 2 :] else cut).strip("-_.")
    return s


def tag_slug(text: str) -> str:
    """A tag for a folder or category; one with no usable letters gets a stable hashed tag."""
    return slug(text) or "category-" + hashlib.sha256(text.encode()).hexdigest()[:6]


def unique_name(base: str, taken: Collection[str]) -> str:
    """``base``, or ``base-2``, ``base-3``… whichever is not in ``taken``."""
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


def name_for(title: str, url: str) -> str:
    """A feed's name before collisions: the slug of ``title``, else of the URL's host."""
    host = urlsplit(url).hostname or ""
    return slug(title) or slug(host.removeprefix("www.")) or "feed"


def _feed_url(raw: str) -> tuple[str, str | None]:
    """The URL to poll (``feed:`` read as http) and a problem message, or None."""
    url = raw.strip()
    low = url.lower()
    if low.startswith("feed://"):
        url = "http://" + url[7:]
    elif low.startswith(("feed:http://", "feed:https://")):
        url = url[5:]
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        got = f", got scheme {parts.scheme!r}" if parts.scheme else ""
        return url, f"expected an http:// or https:// URL{got}"  # never echo the URL: tokens
    if not parts.hostname:
        return url, "the URL has no host name"
    return url, None


# -- reading ----------------------------------------------------------------------------------


def read_opml(path: Path | str, display: str | None = None) -> OpmlDocument:
    """Read and parse the OPML file at ``path``; ConfigError (problems named ``display``)."""
    name = display or str(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError as e:
        raise ConfigError([Problem(name, 0, 0, "file", "not found")]) from e
    except IsADirectoryError as e:
        raise ConfigError([Problem(name, 0, 0, "file", "is a folder, not a file")]) from e
    except OSError as e:
        problem = Problem(name, 0, 0, "file", f"cannot read: {e.strerror or e}")
        raise ConfigError([problem]) from e
    if len(data) > MAX_BYTES:
        message = f"larger than {MAX_BYTES // (1024 * 1024)} MiB, not read"
        raise ConfigError([Problem(name, 0, 0, "file", message)])
    return parse_opml(data, name)


def parse_opml(data: bytes, display: str) -> OpmlDocument:
    """The feeds in the OPML document ``data``; ConfigError if it is not usable OPML."""
    _refuse_entities(data, display)
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as e:
        line, col = e.position
        message = f"not well-formed XML: {_XML_POSITION.sub('', e.msg or str(e))}"
        raise ConfigError([Problem(display, line, col, "opml", message)]) from e
    except (etree.LxmlError, ValueError) as e:
        raise ConfigError([Problem(display, 0, 0, "opml", f"unreadable XML: {e}")]) from e
    dtd: Any = root.getroottree().docinfo.internalDTD  # the stubs lack iterentities()
    if dtd is not None and any(True for _ in dtd.iterentities()):
        raise ConfigError([Problem(display, 1, 1, "opml", _ENTITIES_REFUSED)])
    if etree.QName(root).localname != "opml":
        message = f"expected an <opml> document, got <{etree.QName(root).localname}>"
        raise ConfigError([Problem(display, _line(root), 0, "opml", message)])
    body = _child(root, "body")
    if body is None:
        raise ConfigError([Problem(display, _line(root), 0, "opml", "no <body>")])
    head = _child(root, "head")
    title_el = _child(head, "title") if head is not None else None
    title = (title_el.text or "").strip() if title_el is not None else ""
    found: dict[str, _Found] = {}  # by URL, in document order
    skipped: list[Problem] = []
    merged = _walk(body, (), found, skipped, display)
    feeds: list[OpmlFeed] = []
    taken: set[str] = set()
    for url, f in found.items():
        name = unique_name(name_for(f.text, url), taken)
        taken.add(name)
        feeds.append(OpmlFeed(name, url, tuple(f.tags), f.text, f.line))
    return OpmlDocument(display, title, tuple(feeds), tuple(skipped), merged)


_ENTITIES_REFUSED = "the document declares entities (<!ENTITY>); refused, OPML needs none"


def _refuse_entities(data: bytes, display: str) -> None:
    m = _ENTITY_DECL.search(data)
    if m is None or b"<!DOCTYPE" not in data[: m.start()]:
        return
    line = data.count(b"\n", 0, m.start()) + 1
    col = m.start() - (data.rfind(b"\n", 0, m.start()) + 1) + 1
    raise ConfigError([Problem(display, line, col, "opml", _ENTITIES_REFUSED)])


def _line(el: etree._Element) -> int:
    line: object = el.sourceline  # the stubs type it as "..."
    return line if isinstance(line, int) else 0


def _child(el: etree._Element, name: str) -> etree._Element | None:
    for child in el:
        if isinstance(child.tag, str) and etree.QName(child).localname == name:
            return child
    return None


def _walk(
    parent: etree._Element,
    folders: tuple[str, ...],
    found: dict[str, _Found],
    skipped: list[Problem],
    display: str,
) -> int:
    """Collect the feeds under ``parent`` into ``found``; the number of repeated URLs."""
    merged = 0
    for el in parent:
        if not isinstance(el.tag, str) or etree.QName(el).localname != "outline":
            continue
        attrs = {str(k).lower(): str(v) for k, v in el.attrib.items()}
        text = (attrs.get("text") or "").strip() or (attrs.get("title") or "").strip()
        raw_url = attrs.get("xmlurl", "").strip()
        if not raw_url:
            merged += _walk(el, (*folders, text) if text else folders, found, skipped, display)
            continue
        url, problem = _feed_url(raw_url)
        line = _line(el)
        if problem is not None:
            skipped.append(Problem(display, line, 0, f"outline {text!r}", problem))
        else:
            categories = [
                part for path in attrs.get("category", "").split(",") for part in path.split("/")
            ]
            tags = [tag_slug(t) for t in (*folders, *categories) if t.strip()]
            if url in found:
                merged += 1
                known = found[url].tags
                known += [t for t in tags if t not in known]
            else:
                found[url] = _Found(text, list(dict.fromkeys(tags)), line)
        merged += _walk(el, folders, found, skipped, display)
    return merged


# -- writing ----------------------------------------------------------------------------------


def export_opml(feeds: Iterable[FeedConfig], *, title: str = "feedwatch feeds") -> str:
    """An OPML 2.0 document listing ``feeds``, one folder per first tag."""
    root = etree.Element("opml", version="2.0")
    etree.SubElement(etree.SubElement(root, "head"), "title").text = title
    body = etree.SubElement(root, "body")
    folders: dict[str, etree._Element] = {}
    for feed in feeds:
        parent = body
        if feed.tags:
            first = feed.tags[0]
            if first not in folders:
                folders[first] = etree.SubElement(body, "outline", text=first, title=first)
            parent = folders[first]
        attrs = {"type": "rss", "text": feed.name, "title": feed.name, "xmlUrl": feed.url}
        if len(feed.tags) > 1:
            attrs["category"] = ",".join("/" + t for t in feed.tags[1:])
        etree.SubElement(parent, "outline", attrs)
    text = etree.tostring(root, encoding="unicode", pretty_print=True)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + text
