"""Canonical form of article URLs, so one story has one identity. Contains no business logic.

``canonical_url`` maps the many spellings of one article link to one string: it is used as an
item's id when the entry has no guid, and by later stages to recognise the same story across
feeds. It is deliberately conservative: it only removes what never identifies an article.

- scheme and host are lower-cased; ``http`` becomes ``https``; default ports are dropped;
  ``user:password@`` is dropped (never part of an article's identity, and never worth storing);
- the fragment is dropped;
- tracking parameters are removed (``utm_*``, ``at_*``, and the names in ``TRACKING_PARAMS``);
  the remaining ``key=value`` pairs are sorted, each kept exactly as it was encoded;
- percent-escapes are upper-cased (RFC 3986 §6.2.2.1);
- a trailing slash is removed, except for the root path ``/``;
- AMP forms map to the article: an ``amp`` path segment (``/amp/story``, ``/story/amp``),
  ``.amp.html``, the ``amp`` query parameter, ``outputType=amp``, an ``amp.`` host prefix.

Anything that is not an absolute http(s) URL (``tag:`` URIs, relative paths, garbage) is
returned stripped but otherwise unchanged. The function never raises and is idempotent.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_plus, urljoin, urlsplit, urlunsplit

TRACKING_PREFIXES = ("utm_", "at_")
TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid",
    "mc_cid", "mc_eid", "ocid", "igshid", "_ga", "_gl", "ref_src", "ref_url", "cmpid", "s_cid",
    "_hsenc", "_hsmi", "mkt_tok", "ncid", "sr_share", "smid", "cmp", "wt.mc_id", "icid",
    "spm", "vero_id", "oly_anon_id", "oly_enc_id",
})  # fmt: skip
_SCHEMES = ("http", "https")
# http and https are one scheme here, so both default ports go whichever was written.
_DEFAULT_PORTS = (80, 443)
_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")


def canonical_url(url: str) -> str:
    """The canonical form of ``url`` (see the module docstring). Never raises."""
    s = url.strip()
    try:
        return _canonical(s)
    except (ValueError, UnicodeError):
        return s


def _canonical(s: str) -> str:
    if s.startswith("//"):
        s = "https:" + s
    parts = urlsplit(s)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES or not parts.netloc:
        return s
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return s
    while host.startswith("amp.") and "." in host[4:]:
        host = host[4:]
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    port = parts.port  # raises ValueError when it is not a number in range
    if port is not None and port not in _DEFAULT_PORTS:
        host = f"{host}:{port}"
    return urlunsplit(("https", host, _path(parts.path), _query(parts.query), ""))


def _path(path: str) -> str:
    if "%" in path:
        path = _ESCAPE.sub(lambda m: m.group(0).upper(), path)
    if path.endswith(".amp.html"):
        path = path[: -len(".amp.html")] + ".html"
    segments = [seg for seg in path.split("/") if seg.lower() != "amp"]
    path = "/".join(segments).rstrip("/")
    if not path.startswith("/"):
        path = "/" + path
    return path


def _query(query: str) -> str:
    if not query:
        return ""
    kept = []
    for pair in query.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        name = unquote_plus(key).strip().lower()
        if name in TRACKING_PARAMS or name.startswith(TRACKING_PREFIXES):
            continue
        if name == "amp" or (name == "outputtype" and value.lower() == "amp"):
            continue
        if "%" in pair:
            pair = _ESCAPE.sub(lambda m: m.group(0).upper(), pair)
        kept.append(pair)
    return "&".join(sorted(kept))


def absolute_link(base: str, link: Any) -> str | None:
    """``link`` resolved against ``base`` if the result is an http(s) URL, else None.

    Never raises. Used for entry and feed links: a ``javascript:`` or relative-without-base
    link is not something to put in an alert.
    """
    if not isinstance(link, str) or not (link := link.strip()):
        return None
    try:
        resolved = urljoin(base, link) if base else link
        scheme = urlsplit(resolved).scheme.lower()
    except ValueError:
        return None
    return resolved if scheme in _SCHEMES else None
