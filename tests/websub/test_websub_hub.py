"""WebSub end to end in one process: the poller and the subscriber on a real Redis, the
callback served by ``daemon.ops.http``, a local hub (tests/support/websubhub.py) on real HTTP.
The clock is injected: renewals and the fallback interval are driven, not waited for."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from daemon.config.load import FeedConfig
from daemon.fetch.client import Fetcher, FetchSettings
from daemon.match.matcher import Matcher
from daemon.match.rules import load_rules
from daemon.ops.http import HttpServer, Prefix, Request, Response
from daemon.poll.leases import Leases
from daemon.poll.parse_pool import ParsePool
from daemon.poll.pipeline import Pipeline
from daemon.poll.poller import Poller
from daemon.poll.result import PollResult
from daemon.poll.state import FeedStore
from daemon.publish.stream import Publisher
from daemon.redis.keys import Keys
from daemon.websub.decisions import MAX_LEASE, RENEW_FRACTION
from daemon.websub.service import MAX_QUEUED_PER_FEED, PREFIX, WebSubService, WebSubSettings
from daemon.websub.store import WebSubStore
from tests.support.clock import ManualClock
from tests.support.httpserver import FeedServer
from tests.support.websubhub import Hub

KEYS = Keys("ws")
LEASE = 86400
FALLBACK = 600.0


def feed_xml(server: FeedServer, *items: tuple[str, str], hub: bool = True) -> bytes:
    """An RSS feed advertising the hub and its self URL (atom:link), with (guid, title)s."""
    links = (
        f'<atom:link rel="hub" href="{server.url("/hub")}"/>'
        f'<atom:link rel="self" href="{server.url("/a.xml")}"/>'
        if hub
        else ""
    )
    when = "Sat, 21 Nov 2026 11:50:00 +0000"
    body = "".join(
        f"<item><guid>{g}</guid><title>{t}</title><description>{t}</description>"
        f"<pubDate>{when}</pubDate></item>"
        for g, t in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
        f"<title>A</title><link>https://a.example.org/</link>{links}{body}</channel></rss>"
    ).encode()


@dataclass
class Node:
    """One feedwatch process: a poller, a subscriber, its callback server."""

    poller: Poller
    websub: WebSubService
    server: HttpServer


@dataclass
class Rig:
    clock: ManualClock
    redis: aioredis.Redis
    hub: Hub
    feeds: FeedServer
    nodes: list[Node]

    @property
    def a(self) -> Node:
        return self.nodes[0]

    async def alerts(self) -> list[str]:
        entries = await self.redis.xrange(KEYS.alerts)
        return [json.loads(fields[b"data"])["rule"]["id"] for _id, fields in entries]


@pytest.fixture
async def rig(redis_url: str, feed_server: FeedServer, tmp_path: Path) -> AsyncIterator[Rig]:
    (tmp_path / "r.yaml").write_text("rules:\n  - {id: kursk, title: Kursk, query: Kursk}\n")
    matcher = Matcher(load_rules([tmp_path / "r.yaml"]))
    r = aioredis.Redis.from_url(redis_url)
    clock = ManualClock()
    feeds = {"a": FeedConfig(name="a", url=feed_server.url("/a.xml"), interval=60.0, backfill=0)}
    hub = Hub(feed_server)
    nodes: list[Node] = []
    async with (
        Fetcher(FetchSettings(deadline=5)) as fetcher,
        httpx.AsyncClient(timeout=10) as client,
    ):
        for i in range(2):  # two processes on one Redis
            box: list[WebSubService] = []

            async def handle(req: Request, box: list[WebSubService] = box) -> Response:
                return await box[0].handle(req)

            async def check(req: Request, box: list[WebSubService] = box) -> Response | None:
                return await box[0].check(req)

            route = Prefix(handle, check)
            server = HttpServer("127.0.0.1", 0, {}, handlers={PREFIX: route}, max_body=100_000)
            await server.start()
            websub = WebSubService(
                WebSubStore(r, KEYS),
                feeds,
                WebSubSettings(
                    public_url=server.url,
                    lease=LEASE,
                    fallback_interval=FALLBACK,
                    allow_private_hubs=True,  # the hub is on 127.0.0.1
                ),
                client,
                clock=clock,
            )
            box.append(websub)
            poller = Poller(
                Pipeline(
                    fetcher=fetcher,
                    store=FeedStore(r, KEYS),
                    publisher=Publisher(r, KEYS),
                    matcher=lambda: matcher,
                    parser=ParsePool(0),
                    default_notify=("console",),
                    max_backoff=3600.0,
                    clock=clock,
                    websub=websub,
                ),
                feeds=feeds,
                leases=Leases(r, KEYS, f"node{i}"),
            )
            websub.on_push = poller.accept_push
            nodes.append(Node(poller, websub, server))
        try:
            yield Rig(clock, r, hub, feed_server, nodes)
        finally:
            for node in nodes:
                await node.server.aclose()
    await r.aclose()


async def subscribed(rig: Rig) -> dict[str, str]:
    """First poll, subscription request, verification: the request the hub got."""
    rig.feeds.set("/a.xml", feed_xml(rig.feeds, ("g1", "Weather")))
    assert (await rig.a.poller.poll(rig.a.poller.feeds["a"])).outcome == "ok"
    assert await rig.a.websub.tick() == [("a", "subscribe")]
    request = rig.hub.wait_request()
    status, _ = await asyncio.to_thread(rig.hub.verify, request)
    assert status == 200
    return request


async def test_subscribe_verify_push_alerts(rig: Rig) -> None:
    """A poll discovers the hub; the subscriber asks it with a callback under public_url, an
    unguessable path and a secret; the hub's verification gets its challenge back; a signed
    push of a new item raises the alert like a poll would."""
    request = await subscribed(rig)
    assert request["hub.mode"] == "subscribe"
    assert request["hub.topic"] == rig.feeds.url("/a.xml")
    assert request["hub.callback"].startswith(rig.a.server.url + "/websub/")
    assert len(request["hub.callback"].rsplit("/", 1)[1]) >= 40
    assert len(request["hub.secret"]) >= 40 and request["hub.lease_seconds"] == str(LEASE)
    sub = await rig.a.websub.store.load("a")
    assert sub is not None and sub.active(rig.clock().timestamp())
    assert sub.expires_at == rig.clock().timestamp() + LEASE

    polled = await FeedStore(rig.redis, KEYS).load("a")
    push = feed_xml(rig.feeds, ("g2", "Shelling in Kursk"))
    statuses = await asyncio.to_thread(rig.hub.publish, request["hub.topic"], push)
    assert statuses == [202]
    assert await rig.a.poller.drain(10)
    assert await rig.alerts() == ["kursk"]
    after = await FeedStore(rig.redis, KEYS).load("a")
    assert after.last_poll == polled.last_poll and after.caching == polled.caching  # no poll
    assert await rig.redis.zcard(KEYS.seen("a")) == 2  # g1 from the poll, g2 from the push

    # The same push again (hubs retry): nothing new.
    assert await asyncio.to_thread(rig.hub.publish, request["hub.topic"], push) == [202]
    assert await rig.a.poller.drain(10)
    assert await rig.alerts() == ["kursk"]


async def test_bad_or_missing_signature_is_acknowledged_ignored_and_logged(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """202 (as the recommendation allows), no alert, a warning without the secret."""
    request = await subscribed(rig)
    push = feed_xml(rig.feeds, ("g3", "Kursk again"))
    topic = request["hub.topic"]
    with caplog.at_level(logging.INFO, logger="daemon"):
        assert await asyncio.to_thread(rig.hub.publish, topic, push, secret="wrong") == [202]
        assert await asyncio.to_thread(rig.hub.publish, topic, push, sign=False) == [202]
        assert await asyncio.to_thread(rig.hub.publish, topic, push, algorithm="md5") == [202]
        assert await rig.a.poller.drain(10)
    assert await rig.alerts() == []
    ignored = [r for r in caplog.records if getattr(r, "fw_fields", {}).get("outcome") == "ignored"]
    reasons = [r.fw_fields["reason"] for r in ignored]  # type: ignore[attr-defined]
    assert reasons == ["signature mismatch", "signature missing", "signature unknown method"]
    text = " ".join(str(getattr(r, "fw_fields", "")) + r.getMessage() for r in caplog.records)
    assert request["hub.secret"] not in text
    assert request["hub.callback"].rsplit("/", 1)[1] not in text
    # sha1 and sha512 are accepted as well.
    assert await asyncio.to_thread(rig.hub.publish, topic, push, algorithm="sha512") == [202]
    assert await rig.a.poller.drain(10)
    assert await rig.alerts() == ["kursk"]


async def test_verification_refuses_what_was_not_asked(rig: Rig) -> None:
    """Wrong topic, wrong mode, unknown path: 404 and nothing changes."""
    request = await subscribed(rig)
    wrong_topic = await asyncio.to_thread(rig.hub.verify, request, topic="https://x.example/")
    unsubscribe = await asyncio.to_thread(rig.hub.verify, request, mode="unsubscribe")
    assert wrong_topic[0] == 404 and unsubscribe[0] == 404
    forged = dict(request, **{"hub.callback": rig.a.server.url + "/websub/guessed"})
    assert (await asyncio.to_thread(rig.hub.verify, forged))[0] == 404
    sub = await rig.a.websub.store.load("a")
    assert sub is not None and sub.state == "active"
    async with httpx.AsyncClient() as client:  # a push to an unknown path: 410 Gone
        assert (await client.post(forged["hub.callback"], content=b"x")).status_code == 410


async def test_fallback_polling_is_slower_while_subscribed(rig: Rig) -> None:
    """Scheduled polls are skipped ('websub') until the fallback interval has passed."""
    await subscribed(rig)
    poller, feed = rig.a.poller, rig.a.poller.feeds["a"]
    hits = rig.feeds.hits("/a.xml")
    rig.clock.advance(60)
    assert (await poller.poll(feed, scheduled=True)).outcome == "websub"
    rig.clock.advance(FALLBACK - 120)  # 540 s since the poll: not yet (ticks are 60 s apart)
    assert (await poller.poll(feed, scheduled=True)).outcome == "websub"
    rig.clock.advance(60)
    assert (await poller.poll(feed, scheduled=True)).outcome == "unchanged"
    assert rig.feeds.hits("/a.xml") == hits + 1
    # Once the lease has lapsed without renewal, the normal interval is back.
    rig.clock.advance(LEASE)
    assert (await poller.poll(feed, scheduled=True)).outcome == "unchanged"


async def test_lease_is_renewed_before_it_expires(rig: Rig) -> None:
    """At RENEW_FRACTION of the lease the same subscription (callback, secret) is asked
    again; its verification extends the lease."""
    first = await subscribed(rig)
    rig.clock.advance(LEASE * RENEW_FRACTION - 60)
    assert await rig.a.websub.tick() == []
    rig.clock.advance(120)
    assert await rig.a.websub.tick() == [("a", "renew")]
    assert await rig.a.websub.tick() == []  # waiting for the verification
    renewal = rig.hub.wait_request(2)
    assert renewal["hub.mode"] == "subscribe"
    assert renewal["hub.callback"] == first["hub.callback"]
    assert renewal["hub.secret"] == first["hub.secret"]
    sub = await rig.a.websub.store.load("a")
    assert sub is not None and sub.active(rig.clock().timestamp()) and sub.renewing
    assert (await asyncio.to_thread(rig.hub.verify, renewal))[0] == 200
    sub = await rig.a.websub.store.load("a")
    assert sub is not None and not sub.renewing
    assert sub.expires_at == rig.clock().timestamp() + LEASE


async def test_unsubscribe_when_the_feed_leaves_the_config(rig: Rig) -> None:
    """The subscriber asks the hub to unsubscribe; once verified the record and the callback
    path are gone, and a push there answers 410."""
    request = await subscribed(rig)
    rig.a.websub.feeds.clear()
    assert await rig.a.websub.tick() == [("a", "unsubscribe")]
    unsub = rig.hub.wait_request(2)
    assert unsub["hub.mode"] == "unsubscribe" and unsub["hub.callback"] == request["hub.callback"]
    assert "hub.secret" not in unsub
    status, _ = await asyncio.to_thread(rig.hub.verify, unsub)
    assert status == 200 and rig.hub.subscribers == {}
    assert await rig.a.websub.store.load("a") is None
    assert await rig.redis.hlen(KEYS.websub_tokens) == 0
    assert await rig.redis.smembers(KEYS.websub_feeds) == set()
    async with httpx.AsyncClient() as client:
        assert (await client.post(request["hub.callback"], content=b"x")).status_code == 410


async def test_feed_stops_advertising_its_hub(rig: Rig) -> None:
    """A poll without hub links leads to an unsubscribe; without verification the record is
    dropped after a while."""
    await subscribed(rig)
    rig.feeds.set("/a.xml", feed_xml(rig.feeds, ("g1", "Weather"), hub=False))
    rig.clock.advance(FALLBACK)
    assert (await rig.a.poller.poll(rig.a.poller.feeds["a"])).outcome == "ok"
    assert await rig.a.websub.tick() == [("a", "unsubscribe")]
    assert await rig.a.websub.tick() == []
    rig.clock.advance(3600)
    assert await rig.a.websub.tick() == [("a", "drop")]
    assert await rig.a.websub.store.load("a") is None


async def test_hub_refusal_is_retried_with_backoff_and_denial_recorded(rig: Rig) -> None:
    rig.hub.status = 500
    rig.feeds.set("/a.xml", feed_xml(rig.feeds, ("g1", "Weather")))
    await rig.a.poller.poll(rig.a.poller.feeds["a"])
    assert await rig.a.websub.tick() == [("a", "subscribe")]
    sub = await rig.a.websub.store.load("a")
    assert sub is not None and sub.state == "failed" and sub.error == "HTTP 500"
    rig.clock.advance(200)
    assert await rig.a.websub.tick() == []
    rig.clock.advance(200)  # 300 s after the first failure
    rig.hub.status = 202
    assert await rig.a.websub.tick() == [("a", "subscribe")]
    request = rig.hub.wait_request(2)
    status, _ = await asyncio.to_thread(rig.hub.verify, request, mode="denied")
    assert status == 200
    sub = await rig.a.websub.store.load("a")
    assert sub is not None and sub.state == "denied" and "not today" in sub.error
    assert await rig.a.websub.tick() == []


async def test_two_processes_share_one_subscription(rig: Rig) -> None:
    """Both tick: one request. The other process's endpoint answers the verification and
    takes the push (any process behind public_url can)."""
    b = rig.nodes[1]
    rig.feeds.set("/a.xml", feed_xml(rig.feeds, ("g1", "Weather")))
    await rig.a.poller.poll(rig.a.poller.feeds["a"])
    done = await asyncio.gather(rig.a.websub.tick(), b.websub.tick())
    assert sorted(done) == [[], [("a", "subscribe")]]
    request = rig.hub.wait_request()
    via_b = dict(request, **{"hub.callback": request["hub.callback"].replace(
        rig.a.server.url, b.server.url)})  # fmt: skip
    assert (await asyncio.to_thread(rig.hub.verify, via_b))[0] == 200
    push = feed_xml(rig.feeds, ("g2", "Kursk"))
    assert await asyncio.to_thread(rig.hub.publish, request["hub.topic"], push) == [202]
    assert await b.poller.drain(10)
    assert await rig.alerts() == ["kursk"]
    assert len(rig.hub.requests) == 1
    # The other process renews with the callback the hub knows, not one of its own.
    rig.clock.advance(LEASE * RENEW_FRACTION)
    assert await b.websub.tick() == [("a", "renew")]
    assert rig.hub.wait_request(2)["hub.callback"] == request["hub.callback"]


async def test_push_waits_for_the_poll_in_flight(rig: Rig) -> None:
    """accept_push never runs beside a poll of the same feed: it starts after it."""
    await subscribed(rig)
    poller = rig.a.poller
    order: list[str] = []
    poller.on_result.append(lambda r: order.append(r.outcome))
    release = asyncio.Event()
    started = asyncio.Event()
    original = poller.pipeline.fetcher.fetch

    async def slow_fetch(*a: object, **k: object):  # type: ignore[no-untyped-def]
        started.set()
        await release.wait()
        return await original(*a, **k)  # type: ignore[arg-type]

    poller.pipeline.fetcher.fetch = slow_fetch  # type: ignore[method-assign]
    rig.clock.advance(FALLBACK)
    rig.feeds.set("/a.xml", feed_xml(rig.feeds, ("g1", "Weather"), ("g5", "Kursk polled")))
    assert poller.submit("a")
    await started.wait()
    task = poller.accept_push("a", feed_xml(rig.feeds, ("g6", "Kursk pushed")), {})
    assert task is not None and not poller.submit("a")
    await asyncio.sleep(0)
    assert order == []
    release.set()
    result: PollResult = await task
    assert order == ["ok", "pushed"] and result.alerts == 1
    assert sorted(await rig.alerts()) == ["kursk", "kursk"]


async def test_a_push_flood_waits_in_a_bounded_queue(rig: Rig) -> None:
    """A hub holds the secret, so its pushes are not trusted to be few: at most
    MAX_QUEUED_PER_FEED of a feed wait for the poller; the others get 503 with Retry-After
    (the hub retries), and there is room again once the poller is done with them."""
    request = await subscribed(rig)
    release, tasks = asyncio.Event(), []

    def slow_poller(feed: str, body: bytes, headers: object) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(release.wait())
        tasks.append(task)
        return task  # type: ignore[return-value]

    rig.a.websub.on_push = slow_poller
    push = feed_xml(rig.feeds, ("g9", "Kursk"))
    statuses = [
        status
        for _ in range(5)
        for status in await asyncio.to_thread(rig.hub.publish, request["hub.topic"], push)
    ]
    assert statuses == [202] * MAX_QUEUED_PER_FEED + [503] * (5 - MAX_QUEUED_PER_FEED)
    release.set()
    await asyncio.gather(*tasks)
    assert await asyncio.to_thread(rig.hub.publish, request["hub.topic"], push) == [202]


async def test_an_absurd_lease_is_bounded_not_a_traceback(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """A 400-digit hub.lease_seconds is taken as MAX_LEASE: verified, no ERROR logged."""
    rig.hub.lease_seconds = int("9" * 400)
    with caplog.at_level(logging.INFO):
        await subscribed(rig)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    sub = await rig.a.websub.store.load("a")
    assert sub is not None and sub.lease == MAX_LEASE
