"""What feedparser's element handlers do to an entry, replayed on lxml elements.

Used by ``daemon.parse.fast`` (which walks the document and decides which elements are
entries). Each handler here mirrors feedparser 6.0's ``_start_X``/``_end_X`` pair for element
name X, as far as the keys ``daemon.parse.normalize`` reads are concerned (``title``, ``summary``,
``content``, ``link``, ``id``, ``published_parsed``, ``updated_parsed``, ``source``): which value
wins (``title_depth``, the per-entry depth map, ``setdefault``), how a value is finished
(``finish``: feedparser's ``pop``), and how inline XHTML is serialised. Anything a handler would
do that this module does not replay exactly raises ``Decline``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol
from xml.sax.saxutils import escape

from feedparser.api import StrictFeedParser
from feedparser.datetimes import _parse_date
from feedparser.html import _cp1252
from feedparser.urls import _urljoin

XHTML = "http://www.w3.org/1999/xhtml"
XHTML_TYPE = "application/xhtml+xml"

# feedparser's namespace URI (lower-cased) -> standard prefix, and its handled element names.
MATCH: dict[str, str] = {uri.lower(): p for uri, p in StrictFeedParser.namespaces.items()}
HANDLED = frozenset(
    n.split("_", 2)[2] for n in dir(StrictFeedParser) if n.startswith(("_start_", "_end_"))
)
_C1 = re.compile("[\x80-\x9f]")
_AMP_REF = re.compile("&([A-Za-z0-9_]+);")
_TYPES = {"text": "text/plain", "plain": "text/plain", "html": "text/html", "xhtml": XHTML_TYPE}
_HTMLISH = ("text/html", XHTML_TYPE)
_QUOT = {'"': "&quot;"}


class Decline(Exception):
    """The fast path is not sure about this body: the feedparser path reads it."""


def finish(value: str, base: str | None = None) -> str:
    """feedparser's ``pop`` finishing: strip, resolve (if ``base`` is given), latin-1 repair,
    cp1252 mapping."""
    out = value.strip()
    if base is not None and out:
        out = _urljoin(base, out)
    if not out.isascii():
        try:
            out = out.encode("iso-8859-1").decode("utf-8")
        except UnicodeError:
            pass
        if _C1.search(out):
            out = out.translate(_cp1252)
    return out


def text_of(el: Any) -> str:
    """The text of an element that must have no child nodes (elements, comments, PIs)."""
    if len(el):
        raise Decline("child nodes in a text field")
    text = el.text
    return text if text is not None else ""


def attr_dict(el: Any) -> dict[str, str]:
    """The attribute dict feedparser's strict parser builds (keys lower-cased, rel/type too)."""
    out: dict[str, str] = {}
    qnames: dict[str, str] = {}
    for key, value in el.items():
        if key[0] == "{":
            uri, _, local = key[1:].partition("}")
            local = local.lower()
            prefix = MATCH.get(uri.lower(), "")
            out[f"{prefix}:{local}" if prefix else local] = value
        else:
            local = key.lower()
            out[local] = value
        if local in qnames:
            raise Decline("attributes differing only in namespace or case")
        qnames[local] = value
    out.update(qnames)
    for key in ("rel", "type"):
        if key in out:
            out[key] = out[key].lower()
    return out


class Entry:
    """One entry being built, with the per-entry state feedparser keeps."""

    __slots__ = ("d", "depths", "has_content", "title_depth")

    def __init__(self) -> None:
        self.d: dict[str, Any] = {}
        self.depths: dict[str, int] = {}
        self.title_depth = -1
        self.has_content = False

    def store(self, key: str, value: str, depth: int) -> None:
        """feedparser's generic store: a value from a deeper element never replaces one."""
        old = self.depths.get(key)
        if old is None or depth <= old:
            self.depths[key] = depth
            self.d[key] = value


class Walker(Protocol):
    """What handlers need from the document walker."""

    atom10: bool  # feedparser's version is atom10: inline XHTML loses its outer div

    def children(self, el: Any, depth: int, base: str, entry: Entry) -> None:
        """Dispatch ``el``'s child elements (at ``depth`` + 1) into ``entry``."""


Handler = Callable[[Walker, Any, int, str, Entry], None]


def typed(r: Walker, el: Any, default: str) -> str:
    """The raw value of a content construct of ``default`` type unless it says otherwise."""
    ctype = default
    if el.keys():
        attrs = attr_dict(el)
        if attrs.get("mode") == "base64" or "src" in attrs:
            raise Decline("base64 or src")
        ctype = attrs.get("type", default).lower()
        ctype = _TYPES.get(ctype, ctype)
    if ctype == "text/plain" or ctype == "text/html":
        return text_of(el)
    if ctype == XHTML_TYPE:
        return xhtml(r.atom10, el)
    raise Decline(f"content type {ctype!r}")


def xhtml(atom10: bool, el: Any) -> str:
    """Inline XHTML as feedparser serialises it (escaped text, bare tags, outer div off)."""
    pieces: list[str] = []
    if el.text:
        pieces.append(escape(el.text))
    for child in el:
        _xhtml(child, pieces)
    if atom10:
        while len(pieces) > 1 and not pieces[-1].strip():
            del pieces[-1]
        while len(pieces) > 1 and not pieces[0].strip():
            del pieces[0]
        if pieces and pieces[-1] == "</div>" and pieces[0].startswith(("<div>", "<div ")):
            depth = 0
            for piece in pieces[:-1]:
                if piece.startswith("</"):
                    depth -= 1
                    if depth == 0:
                        break
                elif piece.startswith("<") and not piece.endswith("/>"):
                    depth += 1
            else:
                pieces = pieces[1:-1]
    return "".join(pieces)


def _xhtml(el: Any, pieces: list[str]) -> None:
    tag = el.tag
    if isinstance(tag, str):
        if not tag.startswith(f"{{{XHTML}}}"):
            raise Decline("non-XHTML element in XHTML content")
        local = tag[len(XHTML) + 2 :].lower()
        if local in ("svg", "math", "body") or f"xhtml_{local}" in HANDLED:
            raise Decline(f"<{local}> in XHTML content")
        attrs = attr_dict(el)
        if "base" in attrs:  # with no feed URL, feedparser's base would leak past the content
            raise Decline("base attribute in XHTML content")
        strattrs = "".join(f' {k}="{escape(v, _QUOT)}"' for k, v in attrs.items())
        pieces.append(f"<{local}{strattrs}>")
        if el.text:
            pieces.append(escape(el.text))
        for child in el:
            _xhtml(child, pieces)
        pieces.append(f"</{local}>")
    if el.tail:  # comments and processing instructions are dropped, their tails kept
        pieces.append(escape(el.tail))


# --- handlers: what feedparser's _start_X/_end_X do to the entry -------------------------------


def _title(media: bool) -> Handler:
    def title(r: Walker, el: Any, depth: int, base: str, e: Entry) -> None:
        value = finish(typed(r, el, "text/plain"))
        if not -1 < e.title_depth <= depth:
            e.store("title", value, depth)
        if value and not media:  # media:title puts title_depth back as it was
            e.title_depth = depth

    return title


def _content(default: str, summary_first: bool) -> Handler:
    """content:encoded / Atom content; with ``summary_first``, a description or summary, which
    becomes content when the entry already has a summary and no content yet."""

    def content(r: Walker, el: Any, depth: int, base: str, e: Entry) -> None:
        if summary_first and not ("summary" in e.d and not e.has_content):
            e.store("summary", finish(typed(r, el, default)), depth)
            return
        e.has_content = True
        value = finish(typed(r, el, "text/plain" if summary_first else default))
        e.d.setdefault("content", []).append({"value": value})
        e.d.setdefault("summary", value)

    return content


def _link(r: Walker, el: Any, depth: int, base: str, e: Entry) -> None:
    attrs = attr_dict(el) if el.keys() else {}
    rel = attrs.setdefault("rel", "alternate")
    ctype = attrs.setdefault("type", "application/atom+xml" if rel == "self" else "text/html")
    href = attrs.get("url", attrs.get("uri", attrs.get("href")))
    if href:
        attrs["href"] = href
    if "href" in attrs:
        if len(el):
            raise Decline("child nodes in a link with href")
        if rel == "alternate" and _TYPES.get(ctype.lower(), ctype.lower()) in _HTMLISH:
            e.d["link"] = _urljoin(base or "", attrs["href"])
        return
    value = finish(text_of(el), base).replace("&amp;", "&")
    e.d["link"] = _AMP_REF.sub(r"&\g<1>", value)


def _guid(r: Walker, el: Any, depth: int, base: str, e: Entry) -> None:
    attrs = attr_dict(el) if el.keys() else {}
    is_link = attrs.get("ispermalink", "true") == "true"
    value = finish(text_of(el), base if is_link else None)
    e.store("id", value, depth)
    if is_link:
        e.d.setdefault("link", value)


def _date(key: str) -> Handler:
    def date(r: Walker, el: Any, depth: int, base: str, e: Entry) -> None:
        value = finish(text_of(el))
        e.store(key, value, depth)
        e.d[f"{key}_parsed"] = _parse_date(value)

    return date


def _source(r: Walker, el: Any, depth: int, base: str, e: Entry) -> None:
    """RSS 2.0 ``<source url=…>name</source>``: ``href`` is the raw ``url`` (not resolved);
    an Atom source (child elements) declines. The last source element wins."""
    text_of(el)
    e.title_depth = -1
    url = attr_dict(el).get("url") if el.keys() else None
    e.d["source"] = {} if url is None else {"href": url}


def _inert(r: Walker, el: Any, depth: int, base: str, e: Entry) -> None:
    """Handlers that only touch other keys (authors, tags, media): walk into them."""
    r.children(el, depth, base, e)


def _inert_text(r: Walker, el: Any, depth: int, base: str, e: Entry) -> None:
    """Content constructs stored under other keys (rights, subtitle): text only."""
    text_of(el)


HANDLERS: dict[str, Handler] = {
    "title": _title(False),
    "dc_title": _title(False),
    "media_title": _title(True),
    "description": _content("text/html", True),
    "dc_description": _content("text/html", True),
    "media_description": _content("text/html", True),
    "summary": _content("text/plain", True),
    "itunes_summary": _content("text/plain", True),
    "content": _content("text/plain", False),
    "content_encoded": _content("text/html", False),
    "link": _link,
    "guid": _guid,
    "id": _guid,
    "source": _source,
    **dict.fromkeys(("pubdate", "published", "issued", "dcterms_issued"), _date("published")),
    **dict.fromkeys(
        ("updated", "modified", "dc_date", "dcterms_modified", "lastbuilddate"), _date("updated")
    ),
    **dict.fromkeys(
        (
            "author", "dc_author", "dc_creator", "itunes_author", "managingeditor", "name",
            "email", "uri", "url", "homepage", "itunes_name", "itunes_email", "contributor",
            "dc_contributor", "category", "dc_subject", "media_category", "keywords",
            "itunes_category", "itunes_keywords", "media_keywords", "tags", "enclosure",
            "media_content", "media_thumbnail", "media_group", "media_credit", "media_rating",
            "media_player", "media_restriction", "media_license", "language", "dc_language",
            "dc_publisher", "webmaster", "created", "dcterms_created", "expirationdate",
            "itunes_image", "itunes_link", "itunes_explicit", "itunes_block", "itunes_owner",
        ),
        _inert,
    ),
    **dict.fromkeys(
        ("rights", "dc_rights", "copyright", "subtitle", "itunes_subtitle"), _inert_text
    ),
}  # fmt: skip
