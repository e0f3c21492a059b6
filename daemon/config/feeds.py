"""The ``feeds`` list of ``feedwatch.yaml`` as ``FeedConfig``s: inline entries and OPML files.

An inline entry is one feed; an ``{opml: PATH, interval?, min_interval?, max_interval?, tags?,
backfill?}`` entry brings every feed of an OPML file (``daemon.config.opml``; PATH relative to the
config file), each with the entry's overrides and its tags followed by the OPML categories.
Names are unique across both kinds; ``feeds[i]`` in problems counts from 0. Omitted overrides
come from ``defaults``; ``min_interval``/``max_interval`` omitted there too are the feed's
``interval`` (fixed). ``intervals`` checks ``min_interval <= interval <= max_interval``, per
feed and in ``defaults``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from daemon.config.context import Ctx, Loc, resolve_path, validate
from daemon.config.messages import show
from daemon.config.models import Defaults, FeedConfig, RawFeed, RawOpmlEntry
from daemon.config.opml import read_opml
from daemon.durations import format_duration
from daemon.errors import ConfigError


def build_feeds(raw: Any, defaults: Defaults, base_dir: Path, ctx: Ctx) -> tuple[FeedConfig, ...]:
    """The feeds of a ``feeds`` value (None: none); problems go to ``ctx``."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        ctx.add(("feeds",), f"expected a list of feeds, got {show(raw)}")
        return ()
    feeds: list[FeedConfig] = []
    first: dict[str, str] = {}  # feed name → where it was first defined
    for i, entry in enumerate(raw):
        if isinstance(entry, dict) and "opml" in entry:
            feeds += _opml_feeds(entry, i, defaults, base_dir, first, ctx)
            continue
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str):
            if name in first:
                ctx.add(
                    ("feeds", i, "name"), f"feed name {name!r} is already used by {first[name]}"
                )
            else:
                first[name] = f"feeds[{i}]"
        feed = validate(RawFeed, entry, ("feeds", i), ctx)
        if feed is None:
            continue
        given = feed.model_fields_set
        interval, lo, hi = intervals(feed, defaults, ("feeds", i), ctx)
        feeds.append(
            FeedConfig(
                name=feed.name,
                url=feed.url,
                interval=interval,
                tags=feed.tags,
                backfill=feed.backfill if "backfill" in given else defaults.backfill,
                secrets=ctx.secrets_under(("feeds", i)),
                min_interval=lo,
                max_interval=hi,
                publisher=feed.publisher,
            )
        )
    return tuple(feeds)


def _opml_feeds(
    entry: dict[str, Any],
    i: int,
    defaults: Defaults,
    base_dir: Path,
    first: dict[str, str],
    ctx: Ctx,
) -> list[FeedConfig]:
    """The feeds an ``{opml: PATH}`` entry brings; problems are located at its ``opml`` key."""
    loc: Loc = ("feeds", i)
    spec = validate(RawOpmlEntry, entry, loc, ctx)
    if spec is None:
        return []
    path = resolve_path(spec.opml, base_dir)
    relative = not Path(spec.opml).expanduser().is_absolute()
    shown = str(Path(ctx.display).parent / spec.opml) if ctx.located and relative else str(path)
    try:
        doc = read_opml(path, shown)
    except ConfigError as e:
        (head, *rest) = e.problems
        if head.line == 0 and not rest:
            ctx.add((*loc, "opml"), f"OPML file {spec.opml!r}: {head.message}")
        else:
            detail = tuple(p.render() for p in e.problems)
            ctx.add((*loc, "opml"), f"OPML file {spec.opml!r} is not usable", detail=detail)
        return []
    if doc.skipped:
        detail = tuple(p.render() for p in doc.skipped)
        ctx.add((*loc, "opml"), f"OPML file {spec.opml!r} lists unusable feeds", detail=detail)
    given = spec.model_fields_set
    interval, lo, hi = intervals(spec, defaults, loc, ctx)
    out: list[FeedConfig] = []
    for feed in doc.feeds:
        place = f"feeds[{i}].opml ({shown}:{feed.line})"
        if feed.name in first:
            ctx.add(
                (*loc, "opml"),
                f"feed name {feed.name!r} from {shown}:{feed.line} "
                f"is already used by {first[feed.name]}",
            )
            continue
        first[feed.name] = place
        out.append(
            FeedConfig(
                name=feed.name,
                url=feed.url,
                interval=interval,
                tags=tuple(dict.fromkeys((*spec.tags, *feed.tags))),
                backfill=spec.backfill if "backfill" in given else defaults.backfill,
                secrets=ctx.secrets_under(loc),
                min_interval=lo,
                max_interval=hi,
            )
        )
    return out


def intervals(
    entry: RawFeed | RawOpmlEntry | Defaults, defaults: Defaults, loc: Loc, ctx: Ctx
) -> tuple[float, float | None, float | None]:
    """``(interval, min_interval, max_interval)`` of a feed entry (or of ``defaults`` itself),
    each omitted one taken from ``defaults``; a problem unless min <= interval <= max."""
    given = entry.model_fields_set

    def pick(key: str) -> tuple[Any, str]:
        if key in given or entry is defaults:
            return getattr(entry, key), ""
        return getattr(defaults, key), " (from defaults)"

    (interval, _), (lo, lo_from), (hi, hi_from) = map(
        pick, ("interval", "min_interval", "max_interval")
    )
    if entry is not defaults and not given & {"interval", "min_interval", "max_interval"}:
        return interval, lo, hi  # all from defaults, checked there
    shown = format_duration(interval)
    if lo is not None and lo > interval:
        where = (*loc, "min_interval") if not lo_from else (*loc, "interval")
        ctx.add(
            where,
            f"min_interval {format_duration(lo)}{lo_from} is longer than interval {shown}",
        )
    if hi is not None and hi < interval:
        where = (*loc, "max_interval") if not hi_from else (*loc, "interval")
        ctx.add(
            where,
            f"max_interval {format_duration(hi)}{hi_from} is shorter than interval {shown}",
        )
    return interval, lo, hi
