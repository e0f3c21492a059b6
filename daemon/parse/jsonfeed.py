"""JSON Feed 1.0 / 1.1 (https://www.jsonfeed.org/version/1.1/), which feedparser does not read.

``read_json_feed`` turns the document into the same shapes feedparser produces — a feed-level
dict (``title``, ``link``, ``links`` with ``rel`` ``self``/``hub``) and entry dicts (``id``,
``title``, ``link``, ``summary``, ``content`` list, ``published_parsed`` / ``updated_parsed`` as
UTC ``struct_time``) — so ``daemon.parse.feed`` and ``daemon.parse.normalize`` treat both alike.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from daemon.errors import ParseError

JSON_TYPES = ("application/feed+json", "application/json")


def looks_like_json(body: bytes, content_type: str) -> bool:
    """True if ``body`` should be read as JSON Feed rather than XML.

    A body that starts with ``{`` is JSON whatever the server says; one that starts with ``<``
    is XML even when served as ``application/json``.
    """
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"{"):
        return True
    if head.startswith(b"<"):
        return False
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime in JSON_TYPES


def read_json_feed(feed: str, body: bytes) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """``(version, feed-level dict, entries)`` of a JSON Feed; ParseError if it is not one."""
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ParseError(feed, f"invalid JSON: {e}") from e
    except RecursionError as e:
        raise ParseError(feed, "invalid JSON: nested too deeply") from e
    if not isinstance(doc, dict):
        raise ParseError(feed, "JSON document is not a JSON Feed (not an object)")
    version_url = doc.get("version")
    if not isinstance(version_url, str) or "jsonfeed.org/version/" not in version_url:
        raise ParseError(feed, "JSON document is not a JSON Feed (no jsonfeed.org version)")
    version = "json11" if version_url.rstrip("/").endswith("/1.1") else "json10"
    raw_items = doc.get("items")
    if not isinstance(raw_items, list):
        raise ParseError(feed, "JSON Feed has no 'items' list")
    meta: dict[str, Any] = {"title": _str(doc.get("title")), "links": _feed_links(doc)}
    home = _str(doc.get("home_page_url"))
    if home:
        meta["link"] = home
    return version, meta, [_entry(item) for item in raw_items if isinstance(item, dict)]


def _feed_links(doc: dict[str, Any]) -> list[dict[str, str]]:
    links = []
    if self_url := _str(doc.get("feed_url")):
        links.append({"rel": "self", "href": self_url})
    hubs = doc.get("hubs")
    if isinstance(hubs, list):
        links += [
            {"rel": "hub", "href": url}
            for hub in hubs
            if isinstance(hub, dict) and (url := _str(hub.get("url")))
        ]
    return links


def _entry(item: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    raw_id = item.get("id")
    if isinstance(raw_id, str | int | float) and not isinstance(raw_id, bool):
        entry["id"] = str(raw_id)  # 1.0 feeds sometimes use numbers; the spec says string
    if title := _str(item.get("title")):
        entry["title"] = title
    if link := _str(item.get("url")) or _str(item.get("external_url")):
        entry["link"] = link
    if summary := _str(item.get("summary")):
        entry["summary"] = summary
    content = []
    if html := _str(item.get("content_html")):
        content.append({"type": "text/html", "value": html})
    if text := _str(item.get("content_text")):
        content.append({"type": "text/plain", "value": text})
    if content:
        entry["content"] = content
    for key, field in (("published_parsed", "date_published"), ("updated_parsed", "date_modified")):
        if (parsed := _date(item.get(field))) is not None:
            entry[key] = parsed
    return entry


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _date(value: Any) -> time.struct_time | None:
    """RFC 3339 → UTC struct_time (as feedparser gives); None if missing or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC).timetuple()
    except (OverflowError, ValueError):
        return None
