"""``feedwatch backtest``: what a rule file would have matched over items already seen. Pure.

The items come from the daemon's archive (``daemon/poll/archive.py``), each with the time it
was first seen and the story the daemon put it in. ``backtest`` runs every enabled rule of a
``Matcher`` over them and reports, per rule:

- the items it matches (with the words that matched), oldest first;
- the stories of those items: the daemon alerts once per (rule, story), so the number of
  stories is close to the number of alerts the rule would have raised (``min_sources``,
  ``throttle`` and silences are not replayed). An item without a story (archived without the
  story stage) is a story of its own;
- counts per day (UTC) of items and of stories (a story on the day of its first matched item).
  An item's day is the day it was published, else the day it was first seen.

``report_json`` is the ``--json`` document; ``render_text`` the readable report.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from daemon.match.matcher import Matcher
from daemon.types import Item, MatchSpan

SHOWN_ITEMS = 10  # items listed per rule in the text report (all of them in --json)


@dataclass(frozen=True, slots=True)
class Archived:
    """One archived item: when it was first seen (epoch s) and its story id, if known."""

    item: Item
    seen: float
    story: str | None = None

    @property
    def day(self) -> str:
        """``YYYY-MM-DD`` (UTC) of its publication, else of its first sighting."""
        when = self.item.published or datetime.fromtimestamp(self.seen, UTC)
        return when.astimezone(UTC).date().isoformat()


@dataclass(frozen=True, slots=True)
class Hit:
    """One item a rule matched, and why."""

    archived: Archived
    spans: tuple[MatchSpan, ...]

    @property
    def story_key(self) -> str:
        """The story id, or ``item:<feed>:<id>`` for an item without one."""
        a = self.archived
        return a.story or f"item:{a.item.feed}:{a.item.id}"


@dataclass(frozen=True, slots=True)
class Story:
    """The items of one story a rule matched; ``title``: its first matched item's."""

    id: str | None  # None: an item the archive knows no story of
    title: str
    items: int
    first_seen: float
    day: str


@dataclass(frozen=True, slots=True)
class RuleReport:
    rule_id: str
    title: str
    severity: str
    hits: tuple[Hit, ...]
    stories: tuple[Story, ...]
    per_day: dict[str, tuple[int, int]]  # day → (items, stories)


@dataclass(frozen=True, slots=True)
class Report:
    since: float
    until: float
    items: int  # archived items looked at
    per_day: dict[str, int]  # day → archived items
    rules: tuple[RuleReport, ...] = field(default=())


def backtest(
    matcher: Matcher, archived: Iterable[Archived], *, since: float, until: float
) -> Report:
    """Every enabled rule of ``matcher`` over the ``archived`` items first seen in
    ``[since, until]``."""
    todo = sorted((a for a in archived if since <= a.seen <= until), key=lambda a: a.seen)
    hits: dict[str, list[Hit]] = {r.id: [] for r in matcher.ruleset.rules if r.enabled}
    per_day: dict[str, int] = {}
    for a in todo:
        per_day[a.day] = per_day.get(a.day, 0) + 1
        for m in matcher.match(a.item):
            hits[m.rule.id].append(Hit(a, m.spans))
    rules = tuple(
        _rule_report(r.id, r.title, r.severity, hits[r.id])
        for r in matcher.ruleset.rules
        if r.id in hits
    )
    return Report(since, until, len(todo), dict(sorted(per_day.items())), rules)


def _rule_report(rule_id: str, title: str, severity: str, hits: Sequence[Hit]) -> RuleReport:
    stories: dict[str, list[Hit]] = {}
    for h in hits:
        stories.setdefault(h.story_key, []).append(h)
    told = tuple(
        Story(
            hs[0].archived.story,
            hs[0].archived.item.title,
            len(hs),
            hs[0].archived.seen,
            hs[0].archived.day,
        )
        for hs in stories.values()
    )
    days: dict[str, list[int]] = {}
    for h in hits:
        days.setdefault(h.archived.day, [0, 0])[0] += 1
    for s in told:
        days.setdefault(s.day, [0, 0])[1] += 1
    per_day = {d: (n[0], n[1]) for d, n in sorted(days.items())}
    return RuleReport(rule_id, title, severity, tuple(hits), told, per_day)


# -- output -----------------------------------------------------------------------------------


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def report_json(report: Report) -> dict[str, object]:
    """The ``--json`` document: every rule with all its items, stories and daily counts."""
    return {
        "since": _iso(report.since),
        "until": _iso(report.until),
        "items": report.items,
        "items_per_day": report.per_day,
        "rules": [
            {
                "rule_id": r.rule_id,
                "title": r.title,
                "severity": r.severity,
                "matched_items": len(r.hits),
                "matched_stories": len(r.stories),
                "per_day": {d: {"items": i, "stories": s} for d, (i, s) in r.per_day.items()},
                "stories": [
                    {
                        "story_id": s.id,
                        "title": s.title,
                        "items": s.items,
                        "first_seen": _iso(s.first_seen),
                    }
                    for s in r.stories
                ],
                "items_matched": [
                    {
                        "feed": h.archived.item.feed,
                        "item_id": h.archived.item.id,
                        "title": h.archived.item.title,
                        "link": h.archived.item.link,
                        "published": (
                            h.archived.item.published.isoformat()
                            if h.archived.item.published
                            else None
                        ),
                        "seen": _iso(h.archived.seen),
                        "story_id": h.archived.story,
                        "matches": [
                            {"term": s.term, "field": s.field, "start": s.start, "end": s.end}
                            for s in h.spans
                        ],
                    }
                    for h in r.hits
                ],
            }
            for r in report.rules
        ],
    }


def render_text(report: Report, *, shown: int = SHOWN_ITEMS) -> str:
    """The readable report: a line per rule, its days, its first ``shown`` items."""
    plural = "s" if report.items != 1 else ""
    window = f"first seen {_iso(report.since)} .. {_iso(report.until)}"
    lines = [f"backtest over {report.items} archived item{plural} {window}"]
    if not report.items:
        lines.append("(the archive holds no items in this window: is `archive:` on, and has")
        lines.append(" the daemon polled since?)")
    for r in report.rules:
        lines.append("")
        lines.append(
            f"[{r.severity}] {r.rule_id}: {r.title} — {len(r.hits)} item"
            f"{'s' if len(r.hits) != 1 else ''} in {len(r.stories)} stor"
            f"{'ies' if len(r.stories) != 1 else 'y'}"
        )
        if r.per_day:
            lines.append(f"  {'day':<10}  {'items':>6}  {'stories':>7}")
        for day, (items, stories) in r.per_day.items():
            lines.append(f"  {day}  {items:>6}  {stories:>7}")
        for h in r.hits[:shown]:
            a = h.archived
            terms = ", ".join(dict.fromkeys(s.term for s in h.spans))
            lines.append(f"  - {a.day} {a.item.feed}: {a.item.title or '(untitled)'}")
            detail = "    " + (a.item.link or a.item.id)
            if terms:
                detail += f"  [{terms}]"
            lines.append(detail)
        if len(r.hits) > shown:
            lines.append(f"  … and {len(r.hits) - shown} more (--json lists them all)")
    matched = sum(1 for r in report.rules if r.hits)
    lines.append("")
    lines.append(f"{matched} of {len(report.rules)} rules matched")
    return "\n".join(lines) + "\n"
