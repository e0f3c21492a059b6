"""``feedwatch test-rule RULES FOLDER``: the items of a folder of feed files or archived items.

Every file under the folder (sub-folders too, in name order, so day folders come in date
order; hidden files skipped) is one of:

- archived items in the real-news corpus format (``../shared/corpora/real-news/README.md``): a
  ``.json`` file holding a JSON list of entries, or an object whose ``entries`` is that list,
  each with ``title``, ``description`` (plain text or HTML), ``link``, ``date_published`` (ISO
  8601) and ``source`` (the feed's URL). They are normalised as the daemon normalises a feed's
  entries (``daemon.parse.normalize``); the feed's name is the file's (without ``_entries``);
- a feed file (RSS, Atom, RDF, JSON Feed: ``.xml``, ``.rss``, ``.atom``, ``.rdf``, ``.feed``,
  ``.json``), parsed like a fetched body.

Other files are skipped. An item found in several files (a feed captured on several days) is
kept once, from the first. A file that cannot be read or parsed is a problem, reported, and the
others are still read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon.errors import FeedError
from daemon.parse.feed import parse_items
from daemon.parse.normalize import entry_item
from daemon.types import Item

FEED_SUFFIXES = frozenset((".xml", ".rss", ".atom", ".rdf", ".feed", ".json"))
_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass
class Folder:
    """What a folder held: its items, the files read, skipped, and the problems met."""

    items: list[Item] = field(default_factory=list)
    files: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)


def read_folder(folder: Path) -> Folder:
    """The items of every feed file and archived-items file under ``folder``."""
    out = Folder()
    seen: set[tuple[str, str]] = set()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() not in FEED_SUFFIXES:
            out.skipped += 1
            continue
        try:
            items = read_file(path)
        except OSError as e:
            out.problems.append(f"{rel}: cannot read: {e.strerror or e}")
            continue
        except FeedError as e:
            out.problems.append(f"{rel}: cannot parse: {e.message}")
            continue
        out.files += 1
        for item in items:
            if (item.feed, item.id) not in seen:
                seen.add((item.feed, item.id))
                out.items.append(item)
    return out


def feed_name(path: Path) -> str:
    """A feed name from a file name: ``bbc_entries.json`` → ``bbc``."""
    stem = path.stem.removesuffix("_entries")
    return _NAME.sub("-", stem).strip("-")[:80] or "feed"


def read_file(path: Path) -> list[Item]:
    """The items of one file; raises OSError, or FeedError when it is not a feed."""
    body = path.read_bytes()
    name = feed_name(path)
    if path.suffix.lower() == ".json":
        entries = corpus_entries(body)
        if entries is not None:
            return corpus_items(entries, name, path.resolve().as_uri())
    return parse_items(name, body, {}, path.resolve().as_uri(), ())


def corpus_entries(body: bytes) -> list[Any] | None:
    """The entries of a real-news corpus file, or None if ``body`` is not one (a JSON Feed)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and isinstance(data.get("entries"), list):
        return list(data["entries"])
    return None


def corpus_items(entries: Iterable[Any], feed: str, base: str) -> list[Item]:
    """Corpus entries as normalised items (an entry with nothing to identify is skipped)."""
    items: list[Item] = []
    for e in entries:
        if not isinstance(e, Mapping):
            continue
        source = e.get("source")
        item = entry_item(
            {
                "id": None,
                "title": e.get("title"),
                "summary": e.get("description"),
                "link": e.get("link"),
                "published_parsed": _date(e.get("date_published")),
            },
            feed,
            source if isinstance(source, str) and source else base,
        )
        if item is not None:
            items.append(item)
    return items


def _date(value: object) -> tuple[int, ...] | None:
    """An ISO 8601 date as the UTC ``struct_time``-like tuple the normaliser reads."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).timetuple()[:6]
