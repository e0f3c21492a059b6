"""``feedwatch test-rule RULES FEED [--json]``: rule files against a feed, nothing published.

No Redis, no notifiers: the feed (a file or an http(s) URL) is parsed like the daemon would
(or every file of a folder of feed files or archived items: ``daemon/match/folder.py``),
every item goes through a ``Matcher`` built from the rule files, and the matches are printed —
as text with the matched words highlighted (``**word**``, or bold when writing to a terminal),
or with ``--json`` as one JSON object per (item, rule) match.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

import httpx

from daemon import __version__
from daemon.errors import ConfigError, FeedError
from daemon.match.folder import read_folder
from daemon.match.matcher import Matcher, RuleMatch
from daemon.match.query.doc import FIELD_NAMES, field_text
from daemon.match.rules import load_rules
from daemon.parse.excerpt import excerpt
from daemon.parse.feed import parse_items
from daemon.types import Item, MatchSpan

EXIT_OK = 0
EXIT_FAILED = 1
_TIMEOUT = 30.0


class _SourceError(Exception):
    pass


def _read_source(source: str) -> tuple[str, bytes, dict[str, str], str]:
    """(feed name, body, headers, url) of a file path or an http(s) URL."""
    if urlsplit(source).scheme in ("http", "https"):
        try:
            resp = httpx.get(
                source,
                follow_redirects=True,
                timeout=_TIMEOUT,
                headers={"User-Agent": f"feedwatch/{__version__} test-rule"},
            )
        except httpx.HTTPError as e:
            raise _SourceError(f"cannot fetch {source}: {e}") from e
        if resp.status_code >= 400:
            raise _SourceError(f"cannot fetch {source}: HTTP {resp.status_code}")
        name = urlsplit(str(resp.url)).hostname or "feed"
        return name, resp.content, dict(resp.headers), str(resp.url)
    path = Path(source)
    try:
        body = path.read_bytes()
    except OSError as e:
        raise _SourceError(f"cannot read feed file {source}: {e.strerror or e}") from e
    return path.stem or "feed", body, {}, path.resolve().as_uri()


def test_rule(
    rule_paths: Sequence[Path],
    source: str,
    *,
    as_json: bool,
    out: TextIO,
    err: TextIO | None = None,
) -> int:
    """Print every match of the rules in ``rule_paths`` against the feed at ``source`` (a
    folder: every feed file and archived-items file in it; the files it could not read are
    listed on ``err``, ``out`` if None).

    Returns 0 whether or not anything matched; 1 (with a message on ``out``) if the rules are
    invalid or the feed cannot be read.
    """
    try:
        matcher = Matcher(load_rules(rule_paths))
    except ConfigError as e:
        out.write(e.render() + "\n")
        return EXIT_FAILED
    try:
        if Path(source).is_dir():
            items = _folder_items(Path(source), err or out)
        else:
            name, body, headers, url = _read_source(source)
            items = parse_items(name, body, headers, url, ())
    except _SourceError as e:
        out.write(f"error: {e}\n")
        return EXIT_FAILED
    except FeedError as e:
        out.write(f"error: cannot parse {source}: {e.message}\n")
        return EXIT_FAILED
    results = [(item, matcher.match(item)) for item in items]
    if as_json:
        for item, matches in results:
            for m in matches:
                out.write(json.dumps(match_json(item, m), ensure_ascii=False) + "\n")
    else:
        bold = out.isatty()
        for item, matches in results:
            if matches:
                out.write(render_item(item, matches, bold=bold))
        matched = sum(1 for _, m in results if m)
        total = sum(len(m) for _, m in results)
        out.write(
            f"{matched} of {len(items)} items matched"
            f" ({total} match{'es' if total != 1 else ''}, {matcher.rule_count} rules)\n"
        )
    return EXIT_OK


def _folder_items(folder: Path, err: TextIO) -> list[Item]:
    found = read_folder(folder)
    for problem in found.problems:
        err.write(f"warning: {problem}\n")
    if not found.files:
        raise _SourceError(f"no feed files or archived items in {folder}")
    err.write(f"read {len(found.items)} items from {found.files} files in {folder}\n")
    return found.items


def match_json(item: Item, m: RuleMatch) -> dict[str, object]:
    return {
        "rule_id": m.rule.id,
        "item_id": item.id,
        "title": item.title,
        "link": item.link,
        "matches": [
            {"term": s.term, "field": s.field, "start": s.start, "end": s.end} for s in m.spans
        ],
    }


def highlight(text: str, spans: Sequence[MatchSpan], *, bold: bool, limit: int = 300) -> str:
    """The sentence around the first of ``spans`` (the strongest evidence), every span in it
    highlighted."""
    if not spans:
        return excerpt(text, 0, 0, limit=limit)
    on, off = ("\x1b[1m", "\x1b[0m") if bold else ("**", "**")
    merged: list[list[int]] = []
    for s in sorted(spans, key=lambda s: (s.start, s.end)):
        if merged and s.start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], s.end)
        else:
            merged.append([s.start, s.end])
    parts: list[str] = []
    pos, shift, first = 0, 0, (0, 0)
    for start, end in merged:
        parts += [text[pos:start], on, text[start:end], off]
        if start <= spans[0].start < end or start == spans[0].start:
            first = (start + shift, end + shift + len(on) + len(off))
        shift += len(on) + len(off)
        pos = end
    parts.append(text[pos:])
    marked = "".join(parts)
    return excerpt(marked, first[0], first[1], limit=limit + shift)


def render_item(item: Item, matches: Sequence[RuleMatch], *, bold: bool) -> str:
    lines = [item.title or "(untitled)"]
    if item.link:
        lines.append(f"  {item.link}")
    for m in matches:
        lines.append(f"  [{m.rule.severity}] {m.rule.id}: {m.rule.title}")
        for index, name in enumerate(FIELD_NAMES):
            spans = [s for s in m.spans if s.field == name]
            if spans:
                shown = highlight(field_text(item, index), spans, bold=bold)
                lines.append(f"    {name}: {shown}")
    return "\n".join(lines) + "\n\n"
