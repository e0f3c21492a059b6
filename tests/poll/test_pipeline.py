"""The poller driven directly with an injected clock: outcomes, backoff, Retry-After, drain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from daemon.config.load import FeedConfig
from daemon.fetch.client import Fetcher, FetchSettings
from daemon.match.matcher import Matcher
from daemon.match.rules import load_rules
from daemon.poll.parse_pool import ParsePool
from daemon.poll.pipeline import Pipeline
from daemon.poll.poller import Poller
from daemon.poll.state import FeedStore
from daemon.publish.stream import Publisher
from daemon.redis.keys import Keys
from tests.support.clock import ManualClock
from tests.support.feeds import Entry, rss
from tests.support.httpserver import FeedServer
from tests.support.redis_topologies import aclient


@pytest.fixture
async def rig(
    redis_url: str, feed_server: FeedServer, tmp_path: Path
) -> AsyncIterator[tuple[Poller, ManualClock, aioredis.Redis]]:
    (tmp_path / "r.yaml").write_text("rules:\n  - {id: kursk, title: Kursk, query: Kursk}\n")
    matcher = Matcher(load_rules([tmp_path / "r.yaml"]))
    r = aclient(redis_url)
    keys = Keys("pt")
    clock = ManualClock()
    async with Fetcher(FetchSettings(deadline=5)) as fetcher:
        poller = Poller(
            Pipeline(
                fetcher=fetcher,
                store=FeedStore(r, keys),
                publisher=Publisher(r, keys),
                matcher=lambda: matcher,
                parser=ParsePool(0),
                default_notify=("console",),
                max_backoff=3600.0,
                clock=clock,
            ),
            feeds={
                "a": FeedConfig(
                    name="a", url=feed_server.url("/a.xml"), interval=60.0, backfill=None
                ),
            },
        )
        yield poller, clock, r
    await r.aclose()


def feed(*titles: str, when: datetime) -> bytes:
    return rss([Entry(f"g{i}", t, t, when) for i, t in enumerate(titles)])


async def test_outcomes_and_alerts(
    rig: tuple[Poller, ManualClock, aioredis.Redis], feed_server: FeedServer
) -> None:
    """ok with alerts, then unchanged, then a new item alerts alone."""
    poller, clock, r = rig
    feed_server.set("/a.xml", feed("Kursk front", "Weather", when=clock.now))
    first = await poller.poll(poller.feeds["a"])
    assert (first.outcome, first.items, first.new, first.alerts) == ("ok", 2, 2, 1)
    again = await poller.poll(poller.feeds["a"])
    assert again.outcome == "unchanged" and again.alerts == 0
    feed_server.set("/a.xml", feed("Kursk front", "Weather", "Kursk again", when=clock.now))
    third = await poller.poll(poller.feeds["a"])
    assert (third.outcome, third.new, third.alerts) == ("ok", 1, 1)
    assert await r.xlen(Keys("pt").alerts) == 2


async def test_failure_backs_off_and_success_resets(
    rig: tuple[Poller, ManualClock, aioredis.Redis], feed_server: FeedServer
) -> None:
    """A 500 makes the next polls 'backoff' until the clock passes; success resets."""
    poller, clock, _r = rig
    feed_server.fail("/a.xml", 500)
    res = await poller.poll(poller.feeds["a"])
    assert res.outcome == "error:http" and res.status == 500
    clock.advance(60)  # one interval: still backing off (2 intervals after 1 failure, ±10%)
    assert (await poller.poll(poller.feeds["a"])).outcome == "backoff"
    assert feed_server.hits("/a.xml") == 1
    clock.advance(80)
    assert (await poller.poll(poller.feeds["a"])).outcome == "error:http"  # streak 2
    clock.advance(200)
    assert (await poller.poll(poller.feeds["a"])).outcome == "backoff"  # 4 intervals now
    clock.advance(100)
    feed_server.set("/a.xml", feed("Weather", when=clock.now))
    assert (await poller.poll(poller.feeds["a"])).outcome == "ok"
    assert (await poller.pipeline.store.load("a")).error_streak == 0
    clock.advance(1)
    assert (await poller.poll(poller.feeds["a"])).outcome == "unchanged"


async def test_retry_after_is_honoured(
    rig: tuple[Poller, ManualClock, aioredis.Redis], feed_server: FeedServer
) -> None:
    """429 with Retry-After: 1800 keeps the feed quiet for 30 minutes, not 2 intervals."""
    poller, clock, _r = rig
    feed_server.fail("/a.xml", 429, retry_after="1800")
    assert (await poller.poll(poller.feeds["a"])).outcome == "error:http"
    clock.advance(1500)
    assert (await poller.poll(poller.feeds["a"])).outcome == "backoff"
    clock.advance(600)
    feed_server.set("/a.xml", feed("Weather", when=clock.now))
    assert (await poller.poll(poller.feeds["a"])).outcome == "ok"


async def test_submit_never_overlaps_and_drain_waits(
    rig: tuple[Poller, ManualClock, aioredis.Redis], feed_server: FeedServer
) -> None:
    """A second submit while a poll is in flight is refused; drain waits for it."""
    poller, clock, _r = rig
    release = asyncio.Event()
    feed_server.set("/a.xml", feed("Weather", when=clock.now))
    gate = asyncio.get_running_loop().create_future()
    original = poller.pipeline.fetcher.fetch

    async def slow_fetch(*a: object, **k: object):  # type: ignore[no-untyped-def]
        gate.set_result(None) if not gate.done() else None
        await release.wait()
        return await original(*a, **k)  # type: ignore[arg-type]

    poller.pipeline.fetcher.fetch = slow_fetch  # type: ignore[method-assign]
    assert poller.submit("a") is True
    await gate
    assert poller.submit("a") is False and poller.in_flight == 1
    assert await poller.drain(0.05) is False
    release.set()
    assert await poller.drain(5) is True and poller.in_flight == 0


async def test_scale_out_leases_and_freshness(
    rig: tuple[Poller, ManualClock, aioredis.Redis], feed_server: FeedServer
) -> None:
    """Two processes on one Redis: a feed held by the other is 'leased', one polled by the
    other within the interval is 'fresh'; an explicit poll (run --once) still polls."""
    from daemon.poll.leases import Leases

    poller, clock, r = rig
    keys = Keys("pt")
    poller.leases = Leases(r, keys, "me")
    feed_server.set("/a.xml", feed("Weather", when=clock.now))
    other = Leases(r, keys, "other")
    assert await other.acquire("a", 60)
    assert (await poller.poll(poller.feeds["a"], scheduled=True)).outcome == "leased"
    assert feed_server.hits("/a.xml") == 0
    await other.release("a")
    assert (await poller.poll(poller.feeds["a"], scheduled=True)).outcome == "ok"
    assert await r.get(keys.lease("a")) is None  # released after the poll
    clock.advance(30)  # half the interval: polled recently (as if by another process)
    assert (await poller.poll(poller.feeds["a"], scheduled=True)).outcome == "fresh"
    assert (await poller.poll(poller.feeds["a"])).outcome == "unchanged"
    clock.advance(45)
    assert (await poller.poll(poller.feeds["a"], scheduled=True)).outcome == "unchanged"
    assert feed_server.hits("/a.xml") == 3
