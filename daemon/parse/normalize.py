"""Parsed entries → ``Item``s: stable ids, plain-text fields, absolute links, UTC dates. Pure.

- ``id``: the entry's guid/id (stripped; longer than 512 characters → ``sha256:`` of it), else
  the canonical form of its link, else ``sha256:`` of its title and summary text. Stable across
  runs: it depends on nothing but the entry (and, for relative guids, the feed's URL).
- ``title``: plain text on one line.
- ``summary``: plain text of the full content, followed by the summary only if the summary
  adds text (feeds often repeat the content's first paragraph, or a truncated copy ending in
  "…", as the summary).
- ``link``: absolute http(s) URL (relative links resolved against the feed URL), else None.
- ``published``: ``published_parsed``, else ``updated_parsed``, as an aware UTC datetime; None
  if missing or not representable. Odd dates (1970, next year) are kept: judging them needs a
  clock, and that is the decide stage's business.
- ``source_url``: the URL of the entry's ``<source>`` element (feedparser's ``source``: ``href``
  from RSS 2.0 ``<source url=…>``, else the Atom source's ``link`` or an alternate ``links``
  entry), when it is an absolute http(s) URL with a host; else None. An RSS ``url`` is taken as
  written (resolved, a relative one would name the aggregator, not the outlet); feedparser
  resolves an Atom source's link hrefs as it does every link.

Entries with nothing to identify or match (no id, link, title or text) are skipped; of entries
sharing an id, the first is kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from daemon.parse.parsed import ParsedFeed
from daemon.parse.text import html_to_text, one_line
from daemon.parse.urls import absolute_link, canonical_url
from daemon.types import Item

MAX_ID = 512
# A trailing "[…]", "[...]", "…" or "..." marks a truncated copy of the content.
_ELLIPSES = ("[…]", "[...]", "…", "...")


def normalize(parsed: ParsedFeed, feed: str, tags: tuple[str, ...] = ()) -> list[Item]:
    """The items of ``parsed`` for the feed named ``feed`` (see the module docstring)."""
    return normalize_entries(parsed.entries, feed, parsed.base, tags)


def normalize_entries(
    entries: Iterable[Mapping[str, Any]], feed: str, base: str, tags: tuple[str, ...] = ()
) -> list[Item]:
    """The items of feedparser-shaped ``entries`` (links resolve against ``base``), deduplicated.

    Shared by the feedparser path (through ``normalize``) and the lxml fast path
    (``daemon.parse.fast``), which builds entry dicts with the same keys.
    """
    items: list[Item] = []
    seen: set[str] = set()
    for entry in entries:
        item = entry_item(entry, feed, base, tags)
        if item is not None and item.id not in seen:
            seen.add(item.id)
            items.append(item)
    return items


def entry_item(
    entry: Mapping[str, Any], feed: str, base: str, tags: tuple[str, ...] = ()
) -> Item | None:
    """One entry as an Item; None if it carries nothing to identify or match."""
    title = _text(entry.get("title"), one_line)
    summary = entry_text(entry)
    link = absolute_link(base, entry.get("link"))
    guid = entry.get("id")
    guid = guid.strip() if isinstance(guid, str) else ""
    if guid:
        item_id = guid if len(guid) <= MAX_ID else _digest(guid)
    elif link:
        item_id = canonical_url(link)
    elif title or summary:
        item_id = _digest(f"{title}\n{summary}")
    else:
        return None
    return Item(
        feed=feed,
        id=item_id,
        title=title,
        summary=summary,
        link=link,
        published=entry_date(entry),
        tags=tags,
        source_url=entry_source(entry),
    )


def entry_text(entry: Mapping[str, Any]) -> str:
    """Plain text of the entry's content and summary, without repeating one inside the other."""
    parts: list[str] = []
    content = entry.get("content")
    if isinstance(content, list):
        for block in content:
            if isinstance(block, Mapping):
                _add(parts, _text(block.get("value")))
    _add(parts, _text(entry.get("summary")))
    return "\n".join(parts)


def entry_date(entry: Mapping[str, Any]) -> datetime | None:
    """``published_parsed`` else ``updated_parsed`` (UTC struct_time) as an aware datetime."""
    for key in ("published_parsed", "updated_parsed"):
        value = entry.get(key)
        if value is None:
            continue
        try:
            year, month, day, hour, minute, second = (int(v) for v in tuple(value)[:6])
            return datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)
        except (TypeError, ValueError, OverflowError):
            continue
    return None


def entry_source(entry: Mapping[str, Any]) -> str | None:
    """The absolute http(s) URL of the entry's ``<source>`` element, else None."""
    source = entry.get("source")
    if not isinstance(source, Mapping):
        return None
    candidates = [source.get("href"), source.get("link")]
    links = source.get("links")
    if isinstance(links, list):
        candidates += [
            link.get("href")
            for link in links
            if isinstance(link, Mapping) and link.get("rel", "alternate") == "alternate"
        ]
    for candidate in candidates:
        if url := _http_url(candidate):
            return url
    return None


def _http_url(value: Any) -> str | None:
    """``value`` stripped if it is an absolute http(s) URL with a host, else None."""
    if not isinstance(value, str) or not (url := value.strip()):
        return None
    try:
        parts = urlsplit(url)
        usable = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return None
    return url if usable else None


def _add(parts: list[str], text: str) -> None:
    """Append ``text`` unless one of ``parts`` already says it; replace parts it contains."""
    if not text:
        return
    core = _core(text)
    if any(core in part for part in parts):
        return
    parts[:] = [part for part in parts if _core(part) not in text]
    parts.append(text)


def _core(text: str) -> str:
    """``text`` without a trailing ellipsis (a truncated copy still matches its original)."""
    for suffix in _ELLIPSES:
        if text.endswith(suffix):
            return text[: -len(suffix)].rstrip()
    return text


def _text(value: Any, finish: Callable[[str], str] | None = None) -> str:
    if not isinstance(value, str) or not value:
        return ""
    text = html_to_text(value)
    return finish(text) if finish is not None else text


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
