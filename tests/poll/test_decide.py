"""The pure decider: what is new, what may alert, backoff delays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from daemon.poll.decide import decide, next_poll_delay
from daemon.types import Item

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def item(n: int, age_h: float | None) -> Item:
    pub = None if age_h is None else NOW - timedelta(hours=age_h)
    return Item(feed="f", id=f"i{n}", title=f"t{n}", summary="", link=None, published=pub)


def test_only_unseen_items_are_new() -> None:
    """Seen items are neither new nor alertable."""
    items = [item(1, 1), item(2, 1), item(3, 1)]
    d = decide(items, [True, False, True], first_poll=False, backfill=86400, now=NOW)
    assert [i.id for i in d.new] == ["i2"]
    assert [i.id for i in d.alertable] == ["i2"]
    assert not d.overflow


def test_first_poll_alerts_only_within_backfill() -> None:
    """A new feed does not flood: old and undated items are recorded, not alerted."""
    items = [item(1, 1), item(2, 30), item(3, None)]
    d = decide(items, [False] * 3, first_poll=True, backfill=24 * 3600, now=NOW)
    assert [i.id for i in d.new] == ["i1", "i2", "i3"]
    assert [i.id for i in d.alertable] == ["i1"]


@pytest.mark.parametrize(("backfill", "expected"), [(None, 3), (0.0, 0)])
def test_backfill_all_and_none(backfill: float | None, expected: int) -> None:
    """backfill 'all' alerts on everything, 'none' on nothing."""
    items = [item(1, 1), item(2, 30), item(3, None)]
    d = decide(items, [False] * 3, first_poll=True, backfill=backfill, now=NOW)
    assert len(d.alertable) == expected


def test_baseline_records_without_alerting() -> None:
    """After Redis lost its state everything is recorded and nothing alerts."""
    items = [item(1, 0.1), item(2, 0.2)]
    d = decide(items, [False, False], first_poll=False, backfill=None, now=NOW, baseline=True)
    assert len(d.new) == 2 and d.alertable == () and not d.overflow


def test_all_new_on_a_known_feed_is_overflow() -> None:
    """Every item new on a feed polled before means items may have been missed."""
    items = [item(1, 0.1), item(2, 0.2)]
    assert decide(items, [False, False], first_poll=False, backfill=0, now=NOW).overflow


def test_backoff_doubles_caps_and_honours_retry_after() -> None:
    """Exponential backoff, capped; Retry-After as a floor; reset on success."""
    assert next_poll_delay(60, 0, max_backoff=3600) == 60
    assert next_poll_delay(60, 1, max_backoff=3600) == 120
    assert next_poll_delay(60, 3, max_backoff=3600) == 480
    assert next_poll_delay(60, 10, max_backoff=3600) == 3600
    assert next_poll_delay(60, 0, max_backoff=3600, retry_after=900) == 900
    assert next_poll_delay(60, 1, max_backoff=3600, retry_after=10**6) == 3600
