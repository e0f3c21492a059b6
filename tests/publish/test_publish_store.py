"""Publishing is idempotent; the feed memory is bounded and survives reconnects (real Redis)."""

from __future__ import annotations

from datetime import UTC, datetime

from alerts.wire import Alert, AlertItem, AlertRule
from daemon.poll.state import Commit, FeedStore
from daemon.publish.stream import Publisher, alert_id
from daemon.redis.keys import Keys
from daemon.types import Caching
from tests.support.redis_topologies import aclient

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def make_alert(rule: str, item: str) -> Alert:
    return Alert(
        id=alert_id(rule, "feed", item),
        rule=AlertRule(id=rule, title=rule.title(), severity="high"),
        item=AlertItem(
            id=item, title=f"Title {item}", link=None, excerpt="", published=NOW, feed="feed"
        ),
        matches=(),
        created=NOW,
        notify=("console",),
    )


async def test_same_alert_published_twice_is_one_stream_entry(redis_url: str) -> None:
    """The Lua SET NX + XADD publishes each (rule, item) once, even across calls."""
    r = aclient(redis_url)
    keys = Keys("t")
    pub = Publisher(r, keys)
    first = await pub.publish([make_alert("kursk", "1"), make_alert("kursk", "2")])
    assert all(p.entry_id for p in first)
    again = await pub.publish([make_alert("kursk", "1"), make_alert("dprk", "1")])
    assert again[0].entry_id is None and again[1].entry_id is not None
    entries = await r.xrange(keys.alerts)
    assert len(entries) == 3
    decoded = [Alert.from_json(e[1][b"data"]) for e in entries]
    assert [(a.rule.id, a.item.id) for a in decoded] == [
        ("kursk", "1"),
        ("kursk", "2"),
        ("dprk", "1"),
    ]
    assert await r.get(keys.alert(make_alert("kursk", "1").id)) == first[0].entry_id.encode()
    await r.aclose()


def test_alert_id_is_deterministic_and_distinct() -> None:
    """Alert ids depend on rule, feed and item only."""
    assert alert_id("r", "f", "i") == alert_id("r", "f", "i")
    assert (
        len(
            {
                alert_id("r", "f", "i"),
                alert_id("r2", "f", "i"),
                alert_id("r", "f2", "i"),
                alert_id("r", "f", "i2"),
            }
        )
        == 4
    )


async def test_store_round_trip_and_bounded_memory(redis_url: str) -> None:
    """Validators and outcome round-trip; the seen memory is capped, oldest first."""
    r = aclient(redis_url)
    store = FeedStore(r, Keys("t"), seen_max=3)
    state = await store.load("f")
    assert not state.polled_before and state.caching == Caching()
    await store.commit(
        "f",
        Commit(
            outcome="ok",
            now=NOW,
            caching=Caching(etag='"e"', last_modified="x", body_hash="h"),
            present_ids=["a", "b"],
            new_count=2,
        ),
    )
    later = datetime(2026, 11, 21, 13, 0, tzinfo=UTC)
    await store.commit("f", Commit(outcome="ok", now=later, present_ids=["c", "d"], new_count=2))
    state = await store.load("f")
    assert state.polled_before and state.caching.etag == '"e"' and state.items_seen == 4
    assert await store.seen_flags("f", ["a", "b", "c", "d", "z"]) == [
        False,
        True,
        True,
        True,
        False,
    ]
    await store.commit(
        "f",
        Commit(outcome="error:http", now=later, error="HTTP 500", error_streak=1, next_after=123.0),
    )
    state = await store.load("f")
    assert state.error_streak == 1 and state.last_error == "HTTP 500"
    assert state.caching.etag == '"e"'  # an error keeps the validators
    await r.aclose()
