"""The item archive (daemon/poll/archive.py) on a real Redis: records, trimming by age and by
size, first-seen kept on re-archiving, and a Redis failure that never fails the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from daemon.config.load import FeedConfig
from daemon.errors import StoreError
from daemon.fetch.client import Fetcher, FetchSettings
from daemon.match.matcher import Matcher
from daemon.match.rules import load_rules
from daemon.poll.archive import OVERHEAD, Archive, decode, encode, member
from daemon.poll.parse_pool import ParsePool
from daemon.poll.pipeline import Pipeline
from daemon.poll.state import FeedStore
from daemon.publish.stream import Publisher
from daemon.redis.keys import Keys
from daemon.stories.index import Assigned
from daemon.types import Item
from tests.support.clock import ManualClock
from tests.support.feeds import Entry, rss
from tests.support.httpserver import FeedServer

KEYS = Keys("arc")
T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DAY = 86400.0


def item(n: int, feed: str = "f", summary: str = "text") -> Item:
    return Item(
        feed,
        f"id-{n}",
        f"Title {n}",
        summary,
        f"https://example.org/{n}",
        T0 - timedelta(hours=n),
        ("ukraine",),
    )


def told(story: str) -> Assigned:
    return Assigned(story, True, 1.0, ("f",), (0.0,), 0.0)


@pytest.fixture
async def r(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


def size(it: Item, story: str | None = None) -> int:
    return len(encode(it, story).encode()) + 2 * len(member(it).encode()) + OVERHEAD


def test_record_round_trip() -> None:
    """A record holds every field of the item and its story; a broken record decodes to None."""
    it = Item("bbc", "g1", "Kursk", "Über Курск", None, T0, ("a", "b"), "https://o.example/1")
    back = decode(encode(it, "00ab"), 5.0)
    assert back is not None
    assert (back.item, back.seen, back.story) == (it, 5.0, "00ab")
    assert decode(b"{not json", 1.0) is None
    assert decode(b'{"v":1}', 1.0) is None


async def test_add_and_read_with_stories(r: aioredis.Redis) -> None:
    """Added items are read back oldest first, each with its story and first-seen time."""
    a = Archive(r, KEYS, keep=7 * DAY, max_bytes=10_000_000)
    await a.add([item(1), item(2)], T0, {"id-1": told("s1")})
    await a.add([item(3, feed="g")], T0 + timedelta(minutes=5))
    got = await a.read(0)
    expected = [
        (item(1), T0.timestamp(), "s1"),
        (item(2), T0.timestamp(), None),
        (item(3, feed="g"), T0.timestamp() + 300, None),
    ]
    assert expected == sorted(((x.item, x.seen, x.story) for x in got), key=lambda t: t[1])
    assert [x.item.id for x in await a.read(T0.timestamp() + 1)] == ["id-3"]
    stats = await a.stats()
    assert (stats.items, stats.bytes) == (3, size(item(1), "s1") + size(item(2)) + size(item(3)))


async def test_again_keeps_first_seen_and_counts_once(r: aioredis.Redis) -> None:
    """An item archived again replaces its record, keeps its first-seen time, and its bytes
    are counted once."""
    a = Archive(r, KEYS, keep=7 * DAY, max_bytes=10_000_000)
    await a.add([item(1)], T0)
    await a.add([item(1, summary="longer text now")], T0 + timedelta(hours=1))
    got = await a.read(0)
    assert [(x.item.summary, x.seen) for x in got] == [("longer text now", T0.timestamp())]
    assert (await a.stats()).bytes == size(item(1, summary="longer text now"))


async def test_trim_by_age(r: aioredis.Redis) -> None:
    """Items first seen more than ``keep`` ago are dropped by the next add."""
    a = Archive(r, KEYS, keep=2 * DAY, max_bytes=10_000_000)
    await a.add([item(1), item(2)], T0)
    await a.add([item(3)], T0 + timedelta(days=1))
    assert await a.add([item(4)], T0 + timedelta(days=2, seconds=1)) == 2
    assert [x.item.id for x in await a.read(0)] == ["id-3", "id-4"]
    assert (await a.stats()).bytes == size(item(3)) + size(item(4))


async def test_trim_by_size(r: aioredis.Redis) -> None:
    """Past ``max_bytes`` the oldest items go until the archive fits again."""
    one = size(item(10, summary="x" * 500))
    a = Archive(r, KEYS, keep=7 * DAY, max_bytes=one * 3 + 10)
    for n in range(10, 16):
        await a.add([item(n, summary="x" * 500)], T0 + timedelta(minutes=n))
    got = await a.read(0)
    assert [x.item.id for x in got] == ["id-13", "id-14", "id-15"]
    stats = await a.stats()
    assert (stats.items, stats.bytes) == (3, 3 * one)


async def test_one_item_over_the_cap_leaves_an_empty_archive(r: aioredis.Redis) -> None:
    """An item bigger than the whole budget is not kept (nor anything else)."""
    a = Archive(r, KEYS, keep=7 * DAY, max_bytes=200)
    await a.add([item(1, summary="y" * 1000)], T0)
    assert await a.read(0) == []
    assert (await a.stats()).bytes == 0


async def test_redis_failure_is_logged_once_counted_never_raised(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis that does not answer: add returns 0 and counts, logs once per failure streak;
    read raises StoreError."""
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    errors: list[int] = []
    a = Archive(client, KEYS, keep=DAY, max_bytes=1000, on_error=lambda: errors.append(1))
    try:
        assert await a.add([item(1)], T0) == 0
        assert await a.add([item(2)], T0) == 0
        with pytest.raises(StoreError):
            await a.read(0)
    finally:
        await client.aclose()
    assert errors == [1, 1]
    assert [rec.getMessage() for rec in caplog.records if rec.name == "daemon.archive"] == [
        "archive_failed"
    ]


async def poll_with(archive: Archive, r: aioredis.Redis, url: str, tmp_path: Path) -> list[str]:
    """Two polls of one feed through a Pipeline archiving into ``archive``: (outcome, new,
    alerts) of each."""
    (tmp_path / "r.yaml").write_text("rules:\n  - {id: kursk, title: Kursk, query: Kursk}\n")
    matcher = Matcher(load_rules([tmp_path / "r.yaml"]))
    feed = FeedConfig(name="a", url=url, interval=60.0, backfill=None)
    clock = ManualClock()
    async with Fetcher(FetchSettings(deadline=5)) as fetcher:
        pipeline = Pipeline(
            fetcher=fetcher,
            store=FeedStore(r, KEYS),
            publisher=Publisher(r, KEYS),
            matcher=lambda: matcher,
            parser=ParsePool(0),
            default_notify=("console",),
            max_backoff=3600.0,
            clock=clock,
            archive=archive,
        )
        out = []
        for _ in range(2):
            res = await pipeline.run(feed, 0.0, scheduled=False)
            out.append(f"{res.outcome} {res.new} {res.alerts}")
            clock.advance(60)
        return out


async def test_pipeline_archives_new_items(
    r: aioredis.Redis, feed_server: FeedServer, tmp_path: Path
) -> None:
    """A poll archives its new items (alertable or not), and only new ones."""
    entries = [Entry("g1", "Kursk front", "x"), Entry("g2", "Weather", "y")]
    feed_server.set("/a.xml", rss(entries))
    archive = Archive(r, KEYS, keep=DAY, max_bytes=1_000_000)
    assert await poll_with(archive, r, feed_server.url("/a.xml"), tmp_path) == [
        "ok 2 1",
        "unchanged 0 0",
    ]
    assert sorted(x.item.id for x in await archive.read(0)) == ["g1", "g2"]


async def test_archive_failure_never_fails_a_poll(
    r: aioredis.Redis, feed_server: FeedServer, tmp_path: Path
) -> None:
    """An archive whose Redis is down: the poll is ok and alerts as usual."""
    feed_server.set("/a.xml", rss([Entry("g1", "Kursk front", "x")]))
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    errors: list[int] = []
    archive = Archive(dead, KEYS, keep=DAY, max_bytes=1000, on_error=lambda: errors.append(1))
    try:
        outcomes = await poll_with(archive, r, feed_server.url("/a.xml"), tmp_path)
    finally:
        await dead.aclose()
    assert outcomes == ["ok 1 1", "unchanged 0 0"]
    assert errors == [1]
