"""Build RSS feeds for tests from a few fields."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from xml.sax.saxutils import escape, quoteattr


@dataclass(frozen=True)
class Entry:
    guid: str
    title: str
    description: str
    published: datetime | None = None
    link: str | None = None
    source_url: str | None = None  # an aggregator item's <source url=...> (the outlet)


def rss(
    entries: list[Entry], *, title: str = "Test feed", link: str = "https://news.example.org/"
) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0"><channel>',
        f"<title>{escape(title)}</title><link>{escape(link)}</link>",
        "<description>test</description>",
    ]
    for e in entries:
        parts.append("<item>")
        parts.append(f'<guid isPermaLink="false">{escape(e.guid)}</guid>')
        parts.append(f"<title>{escape(e.title)}</title>")
        parts.append(f"<link>{escape(e.link or 'https://news.example.org/' + e.guid)}</link>")
        parts.append(f"<description>{escape(e.description)}</description>")
        if e.published is not None:
            parts.append(f"<pubDate>{format_datetime(e.published)}</pubDate>")
        if e.source_url is not None:
            parts.append(f"<source url={quoteattr(e.source_url)}>outlet</source>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "\n".join(parts).encode()
