"""Scale-out on one Redis (daemon/poll/leases.py): two pollers ("processes") on one real Redis, one
injected clock. A lease keeps two polls of a feed from overlapping and is renewed while a poll
runs; a claim keeps a feed to one poll per interval across processes."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from daemon.config.load import FeedConfig
from daemon.fetch.client import Fetcher, FetchSettings
from daemon.match.matcher import Matcher
from daemon.match.rules import load_rules
from daemon.poll.leases import Leases, claim_ttl
from daemon.poll.parse_pool import ParsePool
from daemon.poll.peers import CLAIM_PATIENCE, Peers, preferred
from daemon.poll.pipeline import Pipeline
from daemon.poll.poller import Poller
from daemon.poll.state import FeedStore
from daemon.publish.stream import Publisher
from daemon.redis.keys import Keys
from tests.support.clock import ManualClock
from tests.support.feeds import Entry, rss
from tests.support.httpserver import FeedServer, Request, Response

KEYS = Keys("lt")
INTERVAL = 60.0


class Rig:
    """Two pollers, ``a`` and ``b``, as two processes would have them: one Redis, one clock."""

    def __init__(self, r: aioredis.Redis, fetcher: Fetcher, matcher: Matcher, url: str) -> None:
        self.r = r
        self.clock = ManualClock()
        self.feed = FeedConfig(name="f", url=url, interval=INTERVAL, backfill=None)
        self.a = self.poller("a", fetcher, matcher)
        self.b = self.poller("b", fetcher, matcher)

    def poller(self, owner: str, fetcher: Fetcher, matcher: Matcher) -> Poller:
        return Poller(
            Pipeline(
                fetcher=fetcher,
                store=FeedStore(self.r, KEYS),
                publisher=Publisher(self.r, KEYS),
                matcher=lambda: matcher,
                parser=ParsePool(0),
                default_notify=("console",),
                max_backoff=3600.0,
                clock=self.clock,
            ),
            feeds={"f": self.feed},
            leases=Leases(self.r, KEYS, owner),
            lease_ttl=30.0,
        )

    async def tick(self, poller: Poller) -> str:
        """A scheduler tick of ``poller``: its outcome."""
        return (await poller.poll(self.feed, scheduled=True)).outcome


@pytest.fixture
async def rig(redis_url: str, feed_server: FeedServer, tmp_path: Path) -> AsyncIterator[Rig]:
    (tmp_path / "r.yaml").write_text("rules:\n  - {id: kursk, title: Kursk, query: Kursk}\n")
    matcher = Matcher(load_rules([tmp_path / "r.yaml"]))
    r = aioredis.Redis.from_url(redis_url)
    async with Fetcher(FetchSettings(deadline=10)) as fetcher:
        yield Rig(r, fetcher, matcher, feed_server.url("/f.xml"))
    await r.aclose()


def body(*titles: str) -> bytes:
    when = datetime(2026, 11, 21, 11, 0, tzinfo=UTC)
    return rss([Entry(f"g{i}", t, t, when) for i, t in enumerate(titles)])


@contextlib.contextmanager
def stalled(feed_server: FeedServer) -> Iterator[None]:
    """Fetches of the feed hang (up to 10 s) until the block ends."""
    release = threading.Event()

    def stall(req: Request) -> Response:
        release.wait(10)
        return Response(200, body("Weather"))

    feed_server.set_handler("/f.xml", stall)
    try:
        yield
    finally:
        release.set()


def test_a_claim_lasts_the_interval_less_a_small_slack() -> None:
    assert claim_ttl(60.0) == 59.0  # 5%, at most 1 s
    assert claim_ttl(4.0) == pytest.approx(3.8)
    assert claim_ttl(3600.0) == 3599.0
    assert 0 < claim_ttl(1.0) < 1.0


async def test_claims_belong_to_their_owner_until_they_end(redis_url: str) -> None:
    """Another owner's live claim refuses; the owner itself may claim again (its own next
    tick); an ended claim is anyone's; only the owner gives a claim back."""
    r = aioredis.Redis.from_url(redis_url)
    a, b = Leases(r, KEYS, "a"), Leases(r, KEYS, "b")
    t0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    try:
        assert await a.claim("f", t0, 59)
        assert not await b.claim("f", t0 + timedelta(seconds=58.9), 59)
        assert await a.claim("f", t0 + timedelta(seconds=30), 59)  # since t0 + 30 now
        assert not await b.claim("f", t0 + timedelta(seconds=88), 59)
        await b.unclaim("f")  # not b's: nothing happens
        assert not await b.claim("f", t0 + timedelta(seconds=88), 59)
        assert await b.claim("f", t0 + timedelta(seconds=89), 59)
        assert not await a.claim("f", t0 + timedelta(seconds=90), 59)
        await b.unclaim("f")
        assert await r.exists(KEYS.claim("f")) == 0
        assert await a.claim("f", t0 + timedelta(seconds=90), 59)  # since t0 + 90
        # With patience, even the owner waits for the claim's end + patience.
        assert not await a.claim("f", t0 + timedelta(seconds=140), 59, patience=30)
        assert not await b.claim("f", t0 + timedelta(seconds=178.9), 59, patience=30)
        assert await b.claim("f", t0 + timedelta(seconds=179), 59, patience=30)
        # A claim is as long as the feed's interval says now: a shorter one applies at once.
        assert await a.claim("f", t0 + timedelta(seconds=190), 3.8)
    finally:
        await r.aclose()


async def test_the_preferred_process_takes_its_feeds_the_other_waits(
    rig: Rig, feed_server: FeedServer
) -> None:
    """Both processes know each other; the feed prefers one. The other, which polled it
    first, does not keep it: its next tick waits for the claim's end plus its patience, while
    the preferred one's tick takes the feed as soon as the claim ends."""
    members = ("a", "b")
    pref = rig.a if preferred("f", members) == "a" else rig.b
    other = rig.b if pref is rig.a else rig.a
    for p in (pref, other):
        assert p.leases is not None
        p.leases.peers = Peers(rig.r, KEYS, p.leases.owner)
        p.leases.peers.members = members
    feed_server.set("/f.xml", body("Weather"))
    assert await rig.tick(other) == "ok"
    ttl = claim_ttl(INTERVAL)
    rig.clock.advance(ttl + 1)  # the claim ended; the other's patience has not
    assert await rig.tick(other) == "fresh"
    assert await rig.tick(pref) == "unchanged"
    rig.clock.advance(INTERVAL)  # the preferred process's own next tick
    assert await rig.tick(other) == "fresh"
    assert await rig.tick(pref) == "unchanged"
    rig.clock.advance(ttl + CLAIM_PATIENCE * INTERVAL)  # the preferred one is late: take over
    assert await rig.tick(other) == "unchanged"
    assert feed_server.hits("/f.xml") == 4


async def test_two_processes_poll_a_feed_once_per_interval(
    rig: Rig, feed_server: FeedServer
) -> None:
    """b's ticks within a's claim skip the feed ('fresh'); once the claim ends, b polls it and
    a's ticks skip. a's own next tick is never held back by its own claim. run --once ignores
    claims."""
    feed_server.set("/f.xml", body("Weather"))
    assert await rig.tick(rig.a) == "ok"
    t0, ttl = rig.clock.now, claim_ttl(INTERVAL)
    for dt in (1.0, 30.0, ttl - 0.5):
        rig.clock.now = t0 + timedelta(seconds=dt)
        assert await rig.tick(rig.b) == "fresh", dt
    assert feed_server.hits("/f.xml") == 1
    assert await rig.tick(rig.a) == "unchanged"  # a's own tick: its claim does not stop it
    assert feed_server.hits("/f.xml") == 2
    # run --once in b: polls whatever the claims say, and stamps no claim over a's.
    assert (await rig.b.poll(rig.feed)).outcome == "unchanged"
    assert feed_server.hits("/f.xml") == 3
    assert await rig.tick(rig.b) == "fresh"
    rig.clock.advance(ttl + 0.5)  # a's claim (stamped at its last poll) has ended
    assert await rig.tick(rig.b) == "unchanged"
    rig.clock.advance(1)
    assert await rig.tick(rig.a) == "fresh"
    assert feed_server.hits("/f.xml") == 4
    assert (await rig.r.get(KEYS.claim("f"))).endswith(b" b")  # "<since> <length> b"
    assert await rig.r.exists(KEYS.lease("f")) == 0  # every lease released


async def test_a_failing_feed_backs_off_in_every_process(rig: Rig, feed_server: FeedServer) -> None:
    """A poll that failed on the feed keeps its claim, and the backoff it wrote holds the
    others off past the claim; after it, any process retries."""
    feed_server.fail("/f.xml", 500)
    assert await rig.tick(rig.a) == "error:http"
    rig.clock.advance(claim_ttl(INTERVAL) + 1)  # the claim ended; the backoff (~2 intervals) not
    assert await rig.tick(rig.b) == "backoff"
    assert feed_server.hits("/f.xml") == 1
    rig.clock.advance(2 * INTERVAL)
    feed_server.set("/f.xml", body("Weather"))
    assert await rig.tick(rig.b) == "ok"
    assert feed_server.hits("/f.xml") == 2


async def test_a_cancelled_poll_gives_its_claim_and_lease_back(
    rig: Rig, feed_server: FeedServer
) -> None:
    """A poll cancelled mid-fetch (a forced shutdown) committed nothing: another process may
    poll the feed at once, without waiting for the claim or the lease to run out."""
    with stalled(feed_server):
        poll = asyncio.create_task(rig.tick(rig.a))
        assert await asyncio.to_thread(feed_server.wait_in_flight, "/f.xml", 1, 10)
        assert await rig.tick(rig.b) == "fresh"  # claimed: the claim alone stops the tick
        assert (await rig.b.poll(rig.feed)).outcome == "leased"  # an explicit poll: the lease
        poll.cancel()
        with pytest.raises(asyncio.CancelledError):
            await poll
        assert await rig.r.exists(KEYS.claim("f"), KEYS.lease("f")) == 0
    feed_server.set("/f.xml", body("Weather"))
    assert await rig.tick(rig.b) == "ok"


async def test_a_tick_refused_by_a_lease_comes_back_within_an_interval(
    rig: Rig, feed_server: FeedServer
) -> None:
    """A poll that meets another process's lease (a push, or a fetch that outlasts its claim)
    is due again when the lease ends, or one interval later if that is sooner: the lease
    outlives its poll (renewed ttl), so waiting for its whole ttl would keep the process off
    the feed for several intervals."""
    assert rig.a.leases is not None
    rig.a.lease_ttl = 2 * INTERVAL  # a lease longer than the interval
    with stalled(feed_server):
        poll = asyncio.create_task(rig.tick(rig.a))
        assert await asyncio.to_thread(feed_server.wait_in_flight, "/f.xml", 1, 10)
        await rig.r.delete(KEYS.claim("f"))  # as if the fetch outlasted its claim
        refused = await rig.b.poll(rig.feed, scheduled=True)
        assert refused.outcome == "leased"
        assert refused.next_poll == rig.clock.now.timestamp() + INTERVAL
        await rig.a.leases.renew({"f": INTERVAL / 4})  # a lease ending sooner: its end
        refused = await rig.b.poll(rig.feed)
        assert refused.next_poll is not None
        assert refused.next_poll <= rig.clock.now.timestamp() + INTERVAL / 4
    assert (await poll) == "ok"


async def test_the_lease_is_renewed_while_the_poll_runs(rig: Rig, feed_server: FeedServer) -> None:
    """With a 0.6 s lease, a poll held 4 renewals long (longer than the lease) keeps it all
    along, so the other process stays out; it is released when the poll ends."""
    rig.a.lease_ttl = 0.6
    leases = rig.a.leases
    assert leases is not None
    renewals: list[bool] = []
    enough = asyncio.Event()
    renew = leases.renew

    async def counting(ttls: Mapping[str, float]) -> set[str]:
        kept = await renew(ttls)
        renewals.append(kept == {"f"})
        if len(renewals) >= 4:
            enough.set()
        return kept

    leases.renew = counting  # type: ignore[method-assign]
    with stalled(feed_server):
        poll = asyncio.create_task(rig.tick(rig.a))
        await asyncio.wait_for(enough.wait(), 10)
        assert renewals[:4] == [True] * 4  # the lease was still ours at every renewal
        assert await rig.r.get(KEYS.lease("f")) == b"a"
        assert (await rig.b.poll(rig.feed)).outcome == "leased"
    assert (await poll) == "ok"
    assert await rig.r.exists(KEYS.lease("f")) == 0


async def test_a_tick_of_a_claimed_feed_costs_one_read(rig: Rig, feed_server: FeedServer) -> None:
    """Another process's tick of a claimed feed reads the claim and stops there: no lease
    taken, no state read, no script run (Redis's own command counts), and it is due when the
    claim opens to it, from the length its claimer stored."""
    feed_server.set("/f.xml", body("Weather"))
    assert await rig.tick(rig.a) == "ok"
    rig.clock.advance(10)

    async def calls() -> dict[str, int]:
        stats = await rig.r.info("commandstats")
        return {k: int(v["calls"]) for k, v in stats.items()}

    before = await calls()
    refused = await rig.b.poll(rig.feed, scheduled=True)
    after = await calls()
    spent = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    spent.pop("cmdstat_info", None)
    assert refused.outcome == "fresh" and spent == {"cmdstat_get": 1}
    claimed_at = rig.clock.now.timestamp() - 10
    assert refused.next_poll == pytest.approx(claimed_at + claim_ttl(INTERVAL), abs=0.01)


async def test_a_shortened_interval_applies_at_once_to_claims(
    rig: Rig, feed_server: FeedServer
) -> None:
    """A claim taken at a 60 s interval does not hold off a process whose config now says
    10 s (an operator shortened it and restarted) for 60 s: the claim counts as the shorter
    interval's claim, in the one-GET check as in the atomic one."""
    feed_server.set("/f.xml", body("Weather"))
    assert await rig.tick(rig.a) == "ok"
    short = FeedConfig(name="f", url=rig.feed.url, interval=10.0, backfill=None)
    rig.b.feeds["f"] = short
    rig.clock.advance(5)
    assert (await rig.b.poll(short, scheduled=True)).outcome == "fresh"
    rig.clock.advance(claim_ttl(10.0) - 5)
    assert (await rig.b.poll(short, scheduled=True)).outcome == "unchanged"
    assert feed_server.hits("/f.xml") == 2
