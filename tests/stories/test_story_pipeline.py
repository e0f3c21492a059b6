"""Stories in the poller, driven directly with an injected clock: one alert per (rule, story),
follow-ups, corroboration (min_sources), throttle and silences, two pollers on one Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from alerts.wire import Alert
from daemon.config.load import FeedConfig
from daemon.config.yamlfile import load_yaml, to_plain
from daemon.fetch.client import Fetcher, FetchSettings
from daemon.match.matcher import Matcher
from daemon.match.rules import load_rules
from daemon.poll.parse_pool import ParsePool
from daemon.poll.pipeline import Pipeline
from daemon.poll.poller import Poller
from daemon.poll.result import PollResult
from daemon.poll.state import FeedStore
from daemon.publish.alerting import StoryStage
from daemon.publish.silence import Silences
from daemon.publish.stream import Publisher, story_alert_id
from daemon.redis.keys import Keys
from daemon.stories.cluster import item_terms
from daemon.stories.index import StoryStore
from tests.support.clock import ManualClock
from tests.support.feeds import Entry, rss
from tests.support.httpserver import FeedServer
from tests.support.redis_topologies import aclient

PAIRS = Path(__file__).parent.parent / "data" / "stories" / "pairs.yaml"
KEYS = Keys("sp")
FEEDS = ("a", "b", "c")


@cache
def _items() -> dict[str, Any]:
    return dict(to_plain(load_yaml(PAIRS))["items"])


def story_entry(name: str, when: datetime) -> Entry:
    it = _items()[name]
    return Entry(name, it["title"], it["text"], when, f"https://news.example.org/{name}")


class Rig:
    """Pollers of feeds a, b, c on one Redis, with stories and silences."""

    def __init__(self, r: aioredis.Redis, server: FeedServer, fetcher: Fetcher, rules: Path):
        self.r, self.server, self.clock = r, server, ManualClock()
        self.fetcher, self.rules = fetcher, rules
        self.poller = self.make_poller(r)

    def make_poller(self, r: aioredis.Redis) -> Poller:
        matcher = Matcher(load_rules([self.rules]))
        publisher = Publisher(r, KEYS)
        return Poller(
            Pipeline(
                fetcher=self.fetcher,
                store=FeedStore(r, KEYS),
                publisher=publisher,
                matcher=lambda: matcher,
                parser=ParsePool(0),
                default_notify=("console",),
                max_backoff=3600.0,
                clock=self.clock,
                stories=StoryStage(StoryStore(r, KEYS), publisher, Silences(r, KEYS)),
            ),
            feeds={
                f: FeedConfig(
                    name=f,
                    url=self.server.url(f"/{f}.xml"),
                    interval=60,
                    backfill=None,
                    publisher=f,
                )
                for f in FEEDS
            },
        )

    def serve(self, feed: str, *names: str) -> None:
        self.server.set(f"/{feed}.xml", rss([story_entry(n, self.clock.now) for n in names]))

    async def poll(self, feed: str, poller: Poller | None = None) -> PollResult:
        p = poller or self.poller
        result = await p.poll(p.feeds[feed])
        assert result.outcome == "ok", result
        return result

    async def alerts(self) -> list[Alert]:
        entries = await self.r.xrange(KEYS.alerts) or []
        return [Alert.from_json(fields[b"data"]) for _, fields in entries if fields]


@pytest.fixture
def make_rig(
    redis_url: str, feed_server: FeedServer, tmp_path: Path
) -> Callable[[str], Any]:  # an async context manager factory
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def make(rules: str) -> AsyncIterator[Rig]:
        path = tmp_path / "rules.yaml"
        path.write_text(rules)
        r = aclient(redis_url)
        try:
            async with Fetcher(FetchSettings(deadline=5)) as fetcher:
                yield Rig(r, feed_server, fetcher, path)
        finally:
            await r.aclose()

    return make


KURSK = "rules:\n  - {id: kursk, title: Kursk, query: Kursk, severity: high%s}\n"


async def test_three_rewrites_one_alert_two_follow_ups(make_rig: Callable[[str], Any]) -> None:
    """Three outlets carry one story: a new alert, then two updates with sources growing; a
    replayed poll (state lost after publishing) publishes nothing again."""
    async with make_rig(KURSK % "") as rig:
        for feed, name in zip(FEEDS, ("troops-wire", "troops-rewrite", "troops-cut"), strict=True):
            rig.serve(feed, name)
            assert (await rig.poll(feed)).alerts == 1
            rig.clock.advance(60)
        first, second, third = await rig.alerts()
        assert [a.kind for a in (first, second, third)] == ["new", "update", "update"]
        story = first.extra["story_id"]
        assert first.id == story_alert_id("kursk", story)
        assert {a.extra["story_id"] for a in (second, third)} == {story}
        assert second.extra["first_alert_id"] == third.extra["first_alert_id"] == first.id
        assert first.extra["sources"] == ["a"] and first.extra["source_count"] == 1
        assert second.extra["sources"] == ["a", "b"] and second.extra["source_count"] == 2
        assert third.extra["sources"] == ["a", "b", "c"] and third.extra["source_count"] == 3
        assert third.extra["first_title"] == first.item.title
        assert len({first.id, second.id, third.id}) == 3
        await rig.r.delete(KEYS.seen("c"), KEYS.feed_state("c"))
        assert (await rig.poll("c")).alerts == 0
        assert len(await rig.alerts()) == 3


async def test_items_outside_backfill_join_stories(make_rig: Callable[[str], Any]) -> None:
    """A first poll's old items alert on nothing but start stories: the next outlet's item
    raises the story's first alert, listing both feeds."""
    async with make_rig(KURSK % "") as rig:
        a = rig.poller.feeds["a"]
        rig.poller.feeds["a"] = FeedConfig(
            name="a", url=a.url, interval=60, backfill=0.0, publisher="a"
        )
        rig.serve("a", "troops-wire")
        assert (await rig.poll("a")).alerts == 0
        rig.serve("b", "troops-rewrite")
        assert (await rig.poll("b")).alerts == 1
        (alert,) = await rig.alerts()
        assert alert.kind == "new" and alert.extra["sources"] == ["a", "b"]


async def test_min_sources_waits_for_a_second_feed(make_rig: Callable[[str], Any]) -> None:
    """min_sources 2: nothing after the first feed, one alert listing both after the second;
    a third feed is a follow-up."""
    async with make_rig(KURSK % ", min_sources: 2, within: 6h") as rig:
        rig.serve("a", "troops-wire")
        first = await rig.poll("a")
        assert (first.alerts, first.held) == (0, 1)
        assert await rig.alerts() == []
        rig.clock.advance(3600)
        rig.serve("b", "troops-rewrite")
        assert (await rig.poll("b")).alerts == 1
        (alert,) = await rig.alerts()
        assert alert.kind == "new" and alert.extra["sources"] == ["a", "b"]
        assert alert.item.feed == "b"
        rig.serve("c", "troops-cut")
        assert (await rig.poll("c")).alerts == 1
        assert [a.kind for a in await rig.alerts()] == ["new", "update"]


async def test_min_sources_outside_within_stays_quiet(make_rig: Callable[[str], Any]) -> None:
    """A second feed carrying the story after `within` does not corroborate the first."""
    async with make_rig(KURSK % ", min_sources: 2, within: 1h") as rig:
        rig.serve("a", "troops-wire")
        await rig.poll("a")
        rig.clock.advance(2 * 3600)
        rig.serve("b", "troops-rewrite")
        assert (await rig.poll("b")).held == 1
        assert await rig.alerts() == []


async def test_corroboration_by_an_item_the_rule_does_not_match(
    make_rig: Callable[[str], Any],
) -> None:
    """The held match is published when a second feed carries the story in other words."""
    rules = "rules:\n  - {id: tens, query: '\"tens of thousands\"', min_sources: 2}\n"
    async with make_rig(rules) as rig:
        rig.serve("a", "troops-wire")
        assert (await rig.poll("a")).held == 1
        rig.serve("b", "troops-rewrite")
        second = await rig.poll("b")
        assert second.matched == () and second.alerts == 1
        (alert,) = await rig.alerts()
        assert alert.kind == "new" and alert.item.feed == "a"
        assert alert.extra["sources"] == ["a", "b"] and alert.created == rig.clock.now


async def test_throttle_counts_what_it_held_back(make_rig: Callable[[str], Any]) -> None:
    """throttle 10m: one new alert per window; the next one carries held_back; follow-ups
    pass."""
    async with make_rig(KURSK % ", throttle: 10m") as rig:
        rig.serve("a", "troops-wire")
        assert (await rig.poll("a")).alerts == 1
        rig.clock.advance(60)
        rig.serve("a", "troops-wire", "merc-wire")
        assert (await rig.poll("a")).throttled == 1
        rig.serve("b", "troops-rewrite")  # a follow-up of the first story: not throttled
        assert (await rig.poll("b")).alerts == 1
        rig.clock.advance(10 * 60)
        rig.serve("a", "troops-wire", "merc-wire", "back-kyiv")
        assert (await rig.poll("a")).alerts == 1
        kinds = [(a.kind, a.extra.get("held_back")) for a in await rig.alerts()]
        assert kinds == [("new", None), ("update", None), ("new", 1)]


async def test_silence_drops_alerts_until_it_ends(make_rig: Callable[[str], Any]) -> None:
    """A silenced rule publishes nothing (counted); after the silence ends, and after one is
    expired early, it alerts again."""
    async with make_rig(KURSK % "") as rig:
        silences = Silences(rig.r, KEYS)
        now = rig.clock.now.timestamp()
        sid = await silences.add("kursk", 3600, now=now, comment="noisy", created_by="me")
        assert await silences.active("kursk", now) and not await silences.active("other", now)
        rig.serve("a", "troops-wire")
        first = await rig.poll("a")
        assert (first.silenced, first.alerts) == (1, 0)
        rig.clock.advance(3600)
        assert not await silences.active("kursk", rig.clock.now.timestamp())
        rig.serve("a", "troops-wire", "merc-wire")
        assert (await rig.poll("a")).alerts == 1
        again = await silences.add("kursk", 3600, now=rig.clock.now.timestamp())
        assert await silences.expire(again, rig.clock.now.timestamp())
        assert not await silences.expire(again, rig.clock.now.timestamp())
        rig.serve("a", "troops-wire", "merc-wire", "back-kyiv")
        assert (await rig.poll("a")).alerts == 1
        listed = await silences.list(rig.clock.now.timestamp(), expired=True)
        assert [s.id for s in listed] == [sid, again]
        assert await silences.list(rig.clock.now.timestamp()) == []


async def test_two_pollers_publish_one_first_alert(
    make_rig: Callable[[str], Any], redis_url: str
) -> None:
    """Two pollers (own Redis clients) poll feeds carrying one story at once: one story, one
    new alert, one follow-up."""
    async with make_rig(KURSK % "") as rig:
        other = aclient(redis_url)
        try:
            second = rig.make_poller(other)
            rig.serve("a", "troops-wire")
            rig.serve("b", "troops-rewrite")
            await asyncio.gather(rig.poll("a"), rig.poll("b", second))
        finally:
            await other.aclose()
        alerts = await rig.alerts()
        assert sorted(a.kind for a in alerts) == ["new", "update"]
        assert len({a.extra["story_id"] for a in alerts}) == 1


def test_rule_keys_are_validated_where_written(tmp_path: Path) -> None:
    """min_sources, within and throttle are checked; each problem names its line and key."""
    from daemon.errors import ConfigError

    path = tmp_path / "r.yaml"
    path.write_text(
        "rules:\n  - id: a\n    query: x\n    min_sources: 0\n    within: soon\n"
        "    throttle: -1s\n  - {id: b, query: y, min_sources: 3, within: 2h, throttle: 10m}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_rules([path])
    problems = {(p.line, p.where) for p in caught.value.problems}
    assert problems == {
        (4, "rules[0].min_sources"),
        (5, "rules[0].within"),
        (6, "rules[0].throttle"),
    }
    path.write_text("rules:\n  - {id: b, query: y, min_sources: 3, within: 2h, throttle: 10m}\n")
    spec = load_rules([path]).rules[0].spec
    assert (spec.min_sources, spec.within, spec.throttle) == (3, 7200.0, 600.0)


async def test_items_older_than_the_story_window_join_no_story(
    make_rig: Callable[[str], Any],
) -> None:
    """An item published before the story window is history: it starts no story, so a fresh
    rewrite elsewhere is a story of one source; with ``backfill: all`` it would alert, so
    then it does join."""
    async with make_rig(KURSK % "") as rig:
        a = rig.poller.feeds["a"]
        rig.poller.feeds["a"] = FeedConfig(
            name="a", url=a.url, interval=60, backfill=86400, publisher="a"
        )
        old = story_entry("troops-wire", rig.clock.now - timedelta(days=3))
        rig.server.set("/a.xml", rss([old]))
        first = await rig.poll("a")
        assert first.new == 1 and first.alerts == 0  # outside backfill (first poll)
        assert await rig.r.exists(KEYS.story_version) == 0  # nothing was written
        rig.serve("b", "troops-rewrite")
        await rig.poll("b")
        (alert,) = await rig.alerts()
        assert alert.extra["sources"] == ["b"]
        # backfill: all makes the old item alertable, so it joins the story
        rig.server.set("/c.xml", rss([story_entry("troops-cut", old.published)]))
        await rig.poll("c")
        update = (await rig.alerts())[-1]
        assert update.kind == "update" and update.extra["sources"] == ["b", "c"]


def test_story_terms_from_the_parse_workers_equal_inline_ones() -> None:
    """``ParsePool.story_terms`` (worker processes) gives what ``item_terms`` gives: terms and
    sketches do not depend on the process's string hashing."""
    items = _items()
    texts = [(items[n]["title"], items[n]["text"]) for n in ("troops-wire", "merc-kyiv")]
    pool = ParsePool(1)
    try:
        got = asyncio.run(pool.story_terms(texts))
    finally:
        pool.close()
    assert got == [item_terms(t, x) for t, x in texts]


THREE_RULES = """rules:
  - {id: kursk, title: Kursk, query: Kursk, severity: high, notify: [slack]}
  - {id: troops, title: Troops, query: troops, severity: critical, notify: [slack]}
  - {id: zelenskyy, title: Zelenskyy, query: Zelenskyy, severity: medium, notify: [mail]}
"""


async def test_one_message_per_item_for_every_rule(make_rig: Callable[[str], Any]) -> None:
    """An item matching three rules is one message naming them (highest severity first), and
    the next outlet's item one follow-up naming them; each notifier sees its own rules."""
    async with make_rig(THREE_RULES) as rig:
        rig.serve("a", "troops-wire")
        assert (await rig.poll("a")).alerts == 1
        rig.clock.advance(60)
        rig.serve("b", "troops-rewrite")
        assert (await rig.poll("b")).alerts == 1
        first, second = await rig.alerts()
        assert [h.id for h in first.rules] == ["troops", "kursk", "zelenskyy"]
        assert first.kind == "new" and second.kind == "update"
        assert [h.id for h in second.rules] == ["troops", "kursk", "zelenskyy"]
        assert {h.first_alert_id for h in second.rules} == {first.id}
        slack, mail = second.for_notifier("slack"), second.for_notifier("mail")
        assert slack is not None and [h.id for h in slack.rules] == ["troops", "kursk"]
        assert mail is not None and mail.rule.id == "zelenskyy"
        assert mail.extra["first_alert_id"] == first.id
        assert second.for_notifier("console") is None
