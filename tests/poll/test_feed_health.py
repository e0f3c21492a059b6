"""Feed health, driven through the poller with an injected clock: a feed failing longer than
alert_after raises one feed-health alert per failure episode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from alerts.wire import Alert
from daemon.config.load import FeedConfig
from daemon.fetch.client import Fetcher, FetchSettings
from daemon.match.matcher import Matcher
from daemon.match.rules import load_rules
from daemon.poll.health import FeedHealth
from daemon.poll.parse_pool import ParsePool
from daemon.poll.pipeline import Pipeline
from daemon.poll.poller import Poller
from daemon.poll.state import FeedStore
from daemon.publish.silence import Silences
from daemon.publish.stream import Publisher
from daemon.redis.keys import Keys
from tests.support.clock import ManualClock
from tests.support.feeds import Entry, rss
from tests.support.httpserver import FeedServer
from tests.support.redis_topologies import aclient

KEYS = Keys("fh")
HOUR = 3600.0


@pytest.fixture
async def rig(
    redis_url: str, feed_server: FeedServer, tmp_path: Path
) -> AsyncIterator[tuple[Poller, ManualClock, aioredis.Redis]]:
    (tmp_path / "r.yaml").write_text("rules:\n  - {id: kursk, query: Kursk}\n")
    matcher = Matcher(load_rules([tmp_path / "r.yaml"]))
    r = aclient(redis_url)
    clock = ManualClock()
    publisher = Publisher(r, KEYS)
    async with Fetcher(FetchSettings(deadline=5)) as fetcher:
        poller = Poller(
            Pipeline(
                fetcher=fetcher,
                store=FeedStore(r, KEYS),
                publisher=publisher,
                matcher=lambda: matcher,
                parser=ParsePool(0),
                default_notify=("console",),
                max_backoff=600.0,
                clock=clock,
                health=FeedHealth(
                    r,
                    KEYS,
                    publisher,
                    alert_after=6 * HOUR,
                    notify=("console",),
                    silences=Silences(r, KEYS),
                ),
            ),
            feeds={"a": FeedConfig(name="a", url=feed_server.url("/a.xml"), interval=60.0)},
        )
        yield poller, clock, r
    await r.aclose()


async def fail_for(poller: Poller, clock: ManualClock, hours: float) -> int:
    """Poll every 15 minutes for ``hours``; the number of alerts the polls raised."""
    raised = 0
    end = clock.now + timedelta(hours=hours)
    while clock.now < end:
        clock.now += timedelta(minutes=15)
        raised += (await poller.poll(poller.feeds["a"])).alerts
    return raised


async def test_one_alert_per_failure_episode(
    rig: tuple[Poller, ManualClock, aioredis.Redis], feed_server: FeedServer
) -> None:
    """Failing 5 h: nothing; at 6 h: one feed-health alert; still failing: no second one;
    after a success, a new episode alerts again after 6 h."""
    poller, clock, r = rig
    feed_server.fail("/a.xml", 503)
    assert await fail_for(poller, clock, 5) == 0
    assert await fail_for(poller, clock, 1.5) == 1
    assert await fail_for(poller, clock, 3) == 0
    entries = await r.xrange(KEYS.alerts) or []
    (alert,) = [Alert.from_json(f[b"data"]) for _, f in entries if f]
    assert (alert.rule.id, alert.rule.severity, alert.item.feed) == ("feed-health", "high", "a")
    assert alert.item.link is None and alert.notify == ("console",)
    assert "error:http" in alert.item.excerpt and "503" in alert.item.excerpt
    assert alert.extra["failing_since"] == "2026-11-21T12:15:00+00:00"
    feed_server.set("/a.xml", rss([Entry("w", "Weather", "Sun", clock.now)]))
    clock.now += timedelta(hours=1)
    assert (await poller.poll(poller.feeds["a"])).outcome == "ok"
    assert await r.get(KEYS.feed_failing("a")) is None
    feed_server.fail("/a.xml", 500)
    assert await fail_for(poller, clock, 7) == 1
    assert await r.xlen(KEYS.alerts) == 2


async def test_silenced_feed_health(
    rig: tuple[Poller, ManualClock, aioredis.Redis], feed_server: FeedServer
) -> None:
    """`silence add feed-health` keeps the episode quiet while it lasts."""
    poller, clock, r = rig
    await Silences(r, KEYS).add("feed-health", 24 * HOUR, now=clock.now.timestamp())
    feed_server.fail("/a.xml", 503)
    assert await fail_for(poller, clock, 8) == 0
    assert await r.xlen(KEYS.alerts) == 0
