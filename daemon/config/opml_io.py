"""``feedwatch feeds import`` and ``feeds export``: OPML feeds into a config file, and back out.

Import prints a YAML ``feeds:`` block, or appends the feeds to a config file. Appending keeps
the file as written: ruamel's round-trip loader finds the ``feeds`` list and the new entries are
inserted as text after its last item (or a ``feeds:`` block is added at the end), so comments,
quoting and alignment stay; only a flow-style list (``feeds: [{...}]``) makes the whole file go
through ruamel's round-trip dump, which keeps comments but may re-indent. The config must load
before the edit, and the edited text must load (``load_config``) before it replaces the file.
Feeds whose URL is already configured are left out; the others are named again with the
config's names taken (``reuters`` → ``reuters-2``, and the OPML's ``reuters-2`` → ``reuters-3``).

Export writes OPML 2.0 from a loaded config. A feed whose URL came from an environment variable
is left out (with a warning): its URL may carry a token that must not land in a file.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from daemon.config.load import Config, load_config
from daemon.config.opml import OpmlFeed, export_opml, name_for, read_opml, unique_name
from daemon.config.values import MIN_INTERVAL
from daemon.durations import parse_duration
from daemon.errors import ConfigError

EXIT_OK, EXIT_USAGE = 0, 2

_EMPTY_FEEDS = re.compile(r"feeds:[ \t]*(?:~|null|Null|NULL|\[[ \t]*\])?[ \t]*(#.*)?\r?\n?")


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What ``append_to_config`` did. ``renamed`` pairs (name in the OPML, name written)."""

    added: tuple[OpmlFeed, ...]
    already: tuple[OpmlFeed, ...]  # their URL was configured already
    renamed: tuple[tuple[str, str], ...]


def check_interval(text: str) -> str:
    """``text`` if it is a valid feed interval (``10m``); ValueError otherwise."""
    seconds = parse_duration(text)
    if seconds < MIN_INTERVAL:
        raise ValueError(f"an interval must be at least {MIN_INTERVAL:g}s")
    return text


def feed_entries(feeds: Sequence[OpmlFeed], *, interval: str | None = None) -> CommentedSeq:
    """``feeds`` as ``feeds:`` list entries (tags in flow style, ``${`` escaped)."""
    out = CommentedSeq()
    for feed in feeds:
        entry = CommentedMap(name=feed.name, url=feed.url.replace("${", "$${"))
        if interval is not None:
            entry["interval"] = interval
        if feed.tags:
            tags = CommentedSeq(feed.tags)
            tags.fa.set_flow_style()
            entry["tags"] = tags
        out.append(entry)
    return out


def _dump(data: Any, indent: int = 0) -> str:
    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=2, offset=0)
    yaml.width = 4096
    buf = io.StringIO()
    yaml.dump(data, buf)
    return "".join(" " * indent + line for line in buf.getvalue().splitlines(keepends=True))


def feeds_yaml(feeds: Sequence[OpmlFeed], *, interval: str | None = None) -> str:
    """A ``feeds:`` block listing ``feeds``, to paste into a config file."""
    return "feeds:\n" + _dump(feed_entries(feeds, interval=interval), indent=2)


def append_to_config(
    config: Path,
    feeds: Sequence[OpmlFeed],
    *,
    interval: str | None = None,
    env: Mapping[str, str] | None = None,
) -> AppendResult:
    """Add ``feeds`` to the config file ``config``; ConfigError if it is invalid before or after.

    The file is replaced only if the edited text loads; nothing is written when every feed is
    configured already.
    """
    current = load_config(config, env=env)
    urls = {f.url for f in current.feeds}
    taken = {f.name for f in current.feeds}
    added: list[OpmlFeed] = []
    already: list[OpmlFeed] = []
    renamed: list[tuple[str, str]] = []
    for feed in feeds:
        if feed.url in urls:
            already.append(feed)
            continue
        name = unique_name(name_for(feed.title, feed.url), taken)
        if name != feed.name:
            renamed.append((feed.name, name))
            feed = replace(feed, name=name)
        taken.add(name)
        urls.add(feed.url)
        added.append(feed)
    if added:
        text = Path(config).read_text(encoding="utf-8")
        _write_validated(Path(config), insert_feeds(text, added, interval=interval), env)
    return AppendResult(tuple(added), tuple(already), tuple(renamed))


def insert_feeds(text: str, feeds: Sequence[OpmlFeed], *, interval: str | None = None) -> str:
    """The YAML config ``text`` with ``feeds`` added at the end of its ``feeds`` list."""
    newline = "\r\n" if "\r\n" in text else "\n"
    entries = feed_entries(feeds, interval=interval)
    root = YAML(typ="rt").load(text)
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += newline

    def block(indent: int) -> list[str]:
        return [line.rstrip("\n") + newline for line in _dump(entries, indent).splitlines()]

    if root is None or "feeds" not in root:
        return "".join([*lines, "feeds:" + newline, *block(2)])
    seq, key_line = root["feeds"], root.lc.key("feeds")[0]
    if not seq and (m := _EMPTY_FEEDS.fullmatch(lines[key_line])):
        comment = f"  {m.group(1)}" if m.group(1) else ""
        lines[key_line] = "feeds:" + comment + newline
        return "".join([*lines[: key_line + 1], *block(2), *lines[key_line + 1 :]])
    if isinstance(seq, CommentedSeq) and seq and not seq.fa.flow_style():
        item_line, item_col = seq.lc.item(len(seq) - 1)
        dash = lines[item_line].rfind("-", 0, item_col)
        if dash >= 0:
            end = item_line
            for j in range(item_line + 1, len(lines)):
                if lines[j].strip():
                    if len(lines[j]) - len(lines[j].lstrip(" ")) <= dash:
                        break
                    end = j
            return "".join([*lines[: end + 1], *block(dash), *lines[end + 1 :]])
    # Anything else (a flow-style list, an unusual key): ruamel's round trip keeps the comments.
    if seq is None:
        root["feeds"] = seq = CommentedSeq()
    seq.extend(entries)
    yaml = YAML(typ="rt")
    yaml.width = 4096
    buf = io.StringIO()
    yaml.dump(root, buf)
    return buf.getvalue()


def _write_validated(path: Path, text: str, env: Mapping[str, str] | None) -> None:
    """Check that ``text`` loads as a config in ``path``'s folder, then put it in place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        try:
            load_config(tmp, env=env)
        except ConfigError as e:
            problems = [replace(p, file=str(path)) if p.file == tmp else p for p in e.problems]
            raise ConfigError(problems) from None
        if path.is_symlink():  # keep the link: write where it points
            Path(os.path.realpath(path)).write_text(text, encoding="utf-8", newline="")
        else:
            shutil.copymode(path, tmp)
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# -- the commands -----------------------------------------------------------------------------


def run_import(
    opml: Path,
    *,
    append_to: Path | None = None,
    interval: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``feedwatch feeds import``: print a ``feeds:`` block, or append to ``append_to``.

    Raises ConfigError for an unusable OPML file or an invalid config (before or after).
    """
    out, err = out or sys.stdout, err or sys.stderr
    if interval is not None:
        try:
            check_interval(interval)
        except ValueError as e:
            print(f"feedwatch feeds import: --interval: {e}", file=err)
            return EXIT_USAGE
    doc = read_opml(opml)
    for problem in doc.skipped:
        print(f"skipped: {problem.render()}", file=err)
    merged = f", {doc.merged} repeated outlines merged" if doc.merged else ""
    print(f"{len(doc.feeds)} feeds read from {opml}{merged}", file=err)
    if append_to is None:
        out.write(feeds_yaml(doc.feeds, interval=interval))
        return EXIT_OK
    result = append_to_config(append_to, doc.feeds, interval=interval)
    for old, new in result.renamed:
        print(f"renamed: {old} -> {new} (the name is taken)", file=err)
    if result.already:
        print(f"{len(result.already)} feeds already configured, left out", file=err)
    print(f"{len(result.added)} feeds added to {append_to}", file=err)
    return EXIT_OK


def run_export(
    config: Config,
    *,
    output: Path | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``feedwatch feeds export``: OPML 2.0 to ``output`` or ``out``."""
    out, err = out or sys.stdout, err or sys.stderr
    feeds = []
    for f in config.feeds:
        if any(secret in f.url for secret in f.secrets):
            print(f"left out: {f.name} (its URL uses an environment variable)", file=err)
        else:
            feeds.append(f)
    text = export_opml(feeds)
    if output is None:
        out.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        print(f"{len(feeds)} feeds written to {output}", file=err)
    return EXIT_OK
