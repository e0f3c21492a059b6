"""The backtest (daemon/match/backtest.py), pure: rules over archived items → per rule the
matched items, their stories and counts per day; the text and JSON reports."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from daemon.match.backtest import Archived, backtest, render_text, report_json
from daemon.match.matcher import Matcher
from daemon.match.rule_spec import RuleSpec
from daemon.match.rules import RuleSet, make_rule
from daemon.types import Item

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def matcher() -> Matcher:
    rules = (
        make_rule(RuleSpec(id="kursk", title="Kursk", query="Kursk", severity="high")),
        make_rule(RuleSpec(id="sumy", title="Sumy", query="Sumy")),
        make_rule(RuleSpec(id="off", query="Kursk", enabled=False)),
    )
    return Matcher(RuleSet(rules, ()))


def arch(
    n: int, title: str, *, days: int = 0, story: str | None = None, dated: bool = True
) -> Archived:
    when = T0 + timedelta(days=days, minutes=n)
    item = Item("f", f"i{n}", title, "", f"https://e.org/{n}", when if dated else None)
    return Archived(item, when.timestamp(), story)


ITEMS = [
    arch(1, "Fighting in Kursk", story="s1"),
    arch(2, "Kursk: more fighting", story="s1"),
    arch(3, "Weather"),
    arch(4, "Kursk again", days=1, story="s2"),
    arch(5, "Kursk, no story", days=1),
    arch(6, "Kursk long ago", days=-30, story="s0"),
]


def test_items_stories_and_days_per_rule() -> None:
    """Per enabled rule: its items in order, its stories (an item without a story is one of
    its own), counts per day; items outside the window are not looked at."""
    since, until = T0.timestamp() - 3600, (T0 + timedelta(days=2)).timestamp()
    report = backtest(matcher(), ITEMS, since=since, until=until)
    assert report.items == 5
    assert report.per_day == {"2026-03-10": 3, "2026-03-11": 2}
    assert [r.rule_id for r in report.rules] == ["kursk", "sumy"]
    kursk, sumy = report.rules
    assert [h.archived.item.id for h in kursk.hits] == ["i1", "i2", "i4", "i5"]
    assert [(s.id, s.title, s.items) for s in kursk.stories] == [
        ("s1", "Fighting in Kursk", 2),
        ("s2", "Kursk again", 1),
        (None, "Kursk, no story", 1),
    ]
    assert kursk.per_day == {"2026-03-10": (2, 1), "2026-03-11": (2, 2)}
    assert kursk.hits[0].spans[0].term == "Kursk"
    assert (sumy.hits, sumy.stories, sumy.per_day) == ((), (), {})


def test_undated_item_counts_on_the_day_it_was_seen() -> None:
    """An item without a publication date is counted on the day it was first seen."""
    item = arch(1, "Kursk", days=3, dated=False)
    report = backtest(matcher(), [item], since=0, until=T0.timestamp() + 10 * 86400)
    assert report.rules[0].per_day == {"2026-03-13": (1, 1)}


def test_json_report() -> None:
    """The --json document: counts, days, stories and every matched item with its matches."""
    report = backtest(matcher(), ITEMS[:3], since=T0.timestamp(), until=T0.timestamp() + 600)
    doc = json.loads(json.dumps(report_json(report)))
    kursk = doc["rules"][0]
    assert (doc["items"], doc["items_per_day"]) == (3, {"2026-03-10": 3})
    assert (kursk["rule_id"], kursk["matched_items"], kursk["matched_stories"]) == ("kursk", 2, 1)
    assert kursk["per_day"] == {"2026-03-10": {"items": 2, "stories": 1}}
    assert kursk["stories"] == [
        {
            "story_id": "s1",
            "title": "Fighting in Kursk",
            "items": 2,
            "first_seen": "2026-03-10T12:01:00Z",
        }
    ]
    first = kursk["items_matched"][0]
    assert (first["feed"], first["item_id"], first["story_id"]) == ("f", "i1", "s1")
    assert first["matches"] == [{"term": "Kursk", "field": "title", "start": 12, "end": 17}]


def test_text_report() -> None:
    """The readable report: a headline per rule, its days, its items (the first few)."""
    report = backtest(matcher(), ITEMS[:5], since=0, until=T0.timestamp() + 3 * 86400)
    text = render_text(report, shown=2)
    assert "[high] kursk: Kursk — 4 items in 3 stories" in text
    assert "  day          items  stories\n  2026-03-10       2        1\n" in text
    assert "  - 2026-03-10 f: Fighting in Kursk" in text
    assert "    https://e.org/1  [Kursk]" in text
    assert "… and 2 more (--json lists them all)" in text
    assert "[medium] sumy: Sumy — 0 items in 0 stories" in text
    assert text.endswith("1 of 2 rules matched\n")


def test_empty_archive_says_so() -> None:
    """No archived items: the report says where items come from."""
    text = render_text(backtest(matcher(), [], since=0, until=1))
    assert "backtest over 0 archived items" in text
    assert "is `archive:` on" in text
