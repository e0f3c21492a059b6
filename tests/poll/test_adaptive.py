"""Adaptive polling and feed-level signals through the real pipeline (real Redis, FeedServer,
injected clock): the interval shrinks for a busy feed and grows when it falls silent,
Cache-Control max-age is respected, an overflow polls sooner, a quiet feed raises one
feed-health alert per episode, and ``feedwatch status`` shows the effective interval."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from alerts.wire import Alert
from daemon.config.load import FeedConfig, config_from_dict
from daemon.fetch.client import Fetcher, FetchSettings
from daemon.match.matcher import Matcher
from daemon.match.rules import load_rules
from daemon.ops import status
from daemon.poll.health import FeedHealth
from daemon.poll.parse_pool import ParsePool
from daemon.poll.pipeline import Pipeline
from daemon.poll.poller import Poller
from daemon.poll.result import PollResult
from daemon.poll.state import FeedStore
from daemon.publish.silence import Silences
from daemon.publish.stream import Publisher
from daemon.redis.keys import Keys
from tests.support.clock import ManualClock
from tests.support.feeds import Entry, rss
from tests.support.httpserver import FeedServer

KEYS = Keys("ad")
MIN, HOUR, DAY = 60.0, 3600.0, 86400.0
FEED = {"name": "a", "interval": "10m", "min_interval": "1m", "max_interval": "1h"}


Rig = tuple[Poller, ManualClock, aioredis.Redis, FeedServer]


@pytest.fixture
async def rig(redis_url: str, feed_server: FeedServer, tmp_path: Path) -> AsyncIterator[Rig]:
    (tmp_path / "r.yaml").write_text("rules:\n  - {id: kursk, query: Kursk}\n")
    matcher = Matcher(load_rules([tmp_path / "r.yaml"]))
    r = aioredis.Redis.from_url(redis_url)
    clock = ManualClock()
    publisher = Publisher(r, KEYS)
    feed = FeedConfig(
        name="a",
        url=feed_server.url("/a.xml"),
        interval=10 * MIN,
        min_interval=MIN,
        max_interval=HOUR,
        backfill=None,
    )
    async with Fetcher(FetchSettings(deadline=5)) as fetcher:
        poller = Poller(
            Pipeline(
                fetcher=fetcher,
                store=FeedStore(r, KEYS),
                publisher=publisher,
                matcher=lambda: matcher,
                parser=ParsePool(0),
                default_notify=("console",),
                max_backoff=6 * HOUR,
                clock=clock,
                health=FeedHealth(
                    r,
                    KEYS,
                    publisher,
                    alert_after=6 * HOUR,
                    notify=("console",),
                    silences=Silences(r, KEYS),
                    quiet_factor=4,
                    quiet_min=12 * HOUR,
                ),
            ),
            feeds={"a": feed},
        )
        yield poller, clock, r, feed_server
    await r.aclose()


def serve(server: FeedServer, entries: list[Entry], **headers: str) -> None:
    """The feed's body, with an ETag derived from it (so an unchanged feed answers 304)."""
    body = rss(entries)
    server.set("/a.xml", body, etag=f'"{hash(body) & 0xFFFFFFFF:x}"', headers=headers)


async def poll(poller: Poller, *, scheduled: bool = False) -> PollResult:
    return await poller.poll(poller.feeds["a"], scheduled=scheduled)


async def test_interval_shrinks_when_busy_grows_when_silent(rig: Rig, tmp_path: Path) -> None:
    """Every 4 minutes a new item: after three gaps the feed is polled every 2 minutes. Silent,
    the interval grows with the silence up to max_interval; a new item brings it back. The
    status table and JSON show the effective interval and why."""
    poller, clock, r, server = rig
    entries = [Entry("g0", "Weather", "Sun", clock.now)]
    serve(server, entries)
    first = await poll(poller)
    assert (first.outcome, first.interval, first.interval_reason) == ("ok", 600, "base")
    for i in range(1, 5):
        clock.advance(4 * MIN)
        entries.append(Entry(f"g{i}", "Weather", "Rain", clock.now))
        serve(server, entries)
        res = await poll(poller)
        assert res.outcome == "ok" and res.new == 1
    assert (res.interval, res.interval_reason) == (2 * MIN, "rhythm")
    assert res.next_poll == clock.now.timestamp() + 2 * MIN
    state = await poller.pipeline.store.load("a")
    assert (state.interval, state.interval_reason, len(state.rhythm.gaps)) == (120, "rhythm", 4)

    config = config_from_dict(
        {"prefix": "ad", "feeds": [{**FEED, "url": server.url("/a.xml")}]}, base_dir=tmp_path
    )
    shown = await status.gather(r, config, now=clock.now.timestamp())
    (row,) = shown["feeds"]
    assert (row["interval"], row["effective_interval"], row["interval_reason"]) == (
        600,
        120,
        "rhythm",
    )
    assert (row["min_interval"], row["max_interval"]) == (60, 3600)
    assert row["next_poll"] == clock.now.timestamp() + 120
    assert "2m (rhythm)" in status.format_table(shown)

    grown = []
    for wait in (HOUR, 3 * HOUR):  # silent: 304s, the interval grows
        clock.advance(wait)
        res = await poll(poller)
        assert res.outcome == "not_modified"
        grown.append(res.interval)
    assert grown == [15 * MIN, HOUR]  # a quarter of the silence, then max_interval

    clock.advance(10 * MIN)
    entries.append(Entry("g9", "Weather", "Fog", clock.now))
    serve(server, entries)
    assert (await poll(poller)).interval == 2 * MIN


async def test_max_age_is_a_floor_capped_at_max_interval(rig: Rig) -> None:
    """Cache-Control: max-age=1800 on a feed that would be polled every 2 minutes: next poll in
    30 minutes, and a scheduled tick before that is skipped (no request); max-age=2h is capped
    at max_interval (1h)."""
    poller, clock, _r, server = rig
    entries = [
        Entry(f"g{i}", "Weather", "Sun", clock.now - timedelta(minutes=4 * i)) for i in range(5)
    ]
    serve(server, entries, **{"Cache-Control": "public, max-age=1800"})
    res = await poll(poller)
    assert (res.interval, res.interval_reason) == (1800, "max-age")
    clock.advance(15 * MIN)
    skipped = await poll(poller, scheduled=True)
    assert skipped.outcome == "fresh" and server.hits("/a.xml") == 1
    assert skipped.next_poll == res.next_poll and skipped.interval == 1800
    clock.advance(16 * MIN)
    entries.insert(0, Entry("g9", "Weather", "Rain", clock.now))
    serve(server, entries, **{"Cache-Control": "max-age=7200"})
    res = await poll(poller, scheduled=True)
    assert res.outcome == "ok" and server.hits("/a.xml") == 2
    assert (res.interval, res.interval_reason) == (HOUR, "max-age")


async def test_overflow_polls_sooner_and_says_so(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Every item new on a known feed: items were probably missed; the next poll comes after
    min_interval, and a warning says why."""
    poller, clock, _r, server = rig
    serve(server, [Entry("a1", "Weather", "Sun", clock.now), Entry("a2", "Sea", "Calm", clock.now)])
    assert (await poll(poller)).interval == 600
    clock.advance(10 * MIN)
    serve(
        server, [Entry("b1", "Weather", "Rain", clock.now), Entry("b2", "Sea", "Rough", clock.now)]
    )
    with caplog.at_level(logging.WARNING, logger="daemon.poll"):
        res = await poll(poller)
    assert res.overflow and (res.interval, res.interval_reason) == (MIN, "overflow")
    (line,) = [rec for rec in caplog.records if rec.getMessage() == "feed_overflow"]
    assert line.levelno == logging.WARNING
    clock.advance(MIN)  # the next poll: one new item among known ones, no overflow
    serve(
        server,
        [Entry("b3", "Sky", "Grey", clock.now), Entry("b1", "Weather", "Rain", clock.now)],
    )
    res = await poll(poller)
    assert (res.new, res.overflow, res.interval_reason) == (1, False, "base")


async def test_a_quiet_feed_raises_one_feed_health_alert_per_episode(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """A feed with 10 days of items, one every 12 h, publishes once more while watched, then
    stops: at 4 x 12 h it raises one feed-health alert (signal quiet), none more while quiet;
    when it publishes again the episode ends, and a later silence is a new episode with its own
    alert."""
    poller, clock, r, server = rig
    entries = [
        Entry(f"g{i}", "Weather", "Sun", clock.now - timedelta(hours=12 * i)) for i in range(1, 21)
    ]
    serve(server, entries)
    assert (await poll(poller)).alerts == 0
    clock.advance(12 * HOUR)
    entries.insert(0, Entry("g0", "Weather", "Sun", clock.now))
    serve(server, entries)
    assert (await poll(poller)).new == 1
    raised = []
    for step in range(1, 13):  # 2 days and 12 hours, polled every 5 h
        clock.advance(5 * HOUR)
        res = await poll(poller)
        assert res.outcome == "not_modified"
        raised.append((step * 5, res.alerts))
    assert [h for h, n in raised if n] == [50]  # first poll past 48 h of silence; once
    entries_ = await r.xrange(KEYS.alerts) or []
    (alert,) = [Alert.from_json(f[b"data"]) for _, f in entries_]
    assert (alert.rule.id, alert.rule.severity, alert.item.feed) == ("feed-health", "medium", "a")
    assert alert.extra["signal"] == "quiet" and alert.extra["usual_gap_s"] == 12 * HOUR
    assert alert.extra["quiet_after_s"] == 48 * HOUR and alert.item.link is None
    assert "published nothing for 2d2h" in alert.item.title

    entries.insert(0, Entry("new", "Weather", "Back", clock.now))
    serve(server, entries)
    with caplog.at_level(logging.INFO, logger="daemon.feed_health"):
        back = await poll(poller)
    assert back.new == 1 and back.alerts == 0
    assert [rec.getMessage() for rec in caplog.records].count("feed_resumed") == 1
    assert (await poller.pipeline.store.load("a")).rhythm.alerted is None
    clock.advance(3 * DAY)
    assert (await poll(poller)).alerts == 1  # a new episode
    assert await r.xlen(KEYS.alerts) == 2


async def test_a_silenced_quiet_alert_is_raised_once_the_silence_ends(rig: Rig) -> None:
    """feed-health silenced: no quiet alert, and the episode is not marked; it alerts at the
    first poll after the silence expired."""
    poller, clock, r, server = rig
    entries = [Entry(f"g{i}", "W", "S", clock.now - timedelta(hours=12 * i)) for i in range(1, 20)]
    serve(server, entries)
    await poll(poller)
    clock.advance(12 * HOUR)
    serve(server, [Entry("g0", "W", "S", clock.now), *entries])
    assert (await poll(poller)).new == 1
    await Silences(r, KEYS).add("feed-health", 3 * DAY, now=clock.now.timestamp())
    clock.advance(2.5 * DAY)
    assert (await poll(poller)).alerts == 0
    assert (await poller.pipeline.store.load("a")).rhythm.alerted is None
    clock.advance(DAY)
    assert (await poll(poller)).alerts == 1
