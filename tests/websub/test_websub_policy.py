"""Hub URLs from feeds are checked before they are contacted (SSRF), and `feedwatch status`
shows every feed's subscription. The rig of tests/websub/test_websub_hub.py: real Redis, real HTTP,
a local hub on 127.0.0.1 (its nodes allow private hubs); the services built here may not."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
import pytest

from daemon.config.load import Config, config_from_dict
from daemon.ops import status
from daemon.parse.feedlinks import FeedLinks
from daemon.websub.decisions import RENEW_FRACTION, VERIFY_TIMEOUT
from daemon.websub.service import WebSubService, WebSubSettings
from daemon.websub.store import Refusal, WebSubStore
from tests.support.httpserver import FeedServer
from tests.websub.test_websub_hub import FALLBACK, KEYS, LEASE, Rig, feed_xml, rig, subscribed

__all__ = ["rig"]  # the fixture, shared with tests/websub/test_websub_hub.py

LOOPBACK_REFUSED = "127.0.0.1 is a loopback address"


def hub_feed(server: FeedServer, *hubs: str) -> bytes:
    """The rig's feed, advertising ``hubs``."""
    links = "".join(f'<atom:link rel="hub" href="{h}"/>' for h in hubs)
    return feed_xml(server, ("g1", "Weather"), hub=False).replace(
        b"<title>A</title>",
        f'<title>A</title>{links}<atom:link rel="self" href="{server.url("/a.xml")}"/>'.encode(),
    )


class Names:
    """A resolver: fixed answers, counted; a name it does not know does not resolve."""

    def __init__(self, answers: Mapping[str, Sequence[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.answers[host])


def service(
    rig: Rig, client: httpx.AsyncClient, *, allow_private: bool, resolve: Names | None = None
) -> WebSubService:
    """Another process's subscriber on the rig's Redis (its callback is node a's server)."""
    settings = WebSubSettings(
        public_url=rig.a.server.url,
        lease=LEASE,
        fallback_interval=FALLBACK,
        allow_private_hubs=allow_private,
    )
    extra = {"resolve": resolve} if resolve is not None else {}
    return WebSubService(
        WebSubStore(rig.redis, KEYS), rig.a.poller.feeds, settings, client, clock=rig.clock, **extra
    )


def refusals(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    fields = [getattr(r, "fw_fields", {}) for r in caplog.records]
    return [f for f in fields if f.get("action") == "refuse"]


def config(rig: Rig, tmp_path: Path) -> Config:
    return config_from_dict(
        {
            "prefix": "ws",
            "feeds": [{"name": "a", "url": rig.feeds.url("/a.xml")}],
            "http": {"listen": "127.0.0.1:0", "public_url": rig.a.server.url},
        },
        base_dir=tmp_path,
    )


async def test_private_hub_is_refused_logged_once_and_polling_goes_on(
    rig: Rig, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """The feed's hub is on 127.0.0.1: two processes that do not allow private hubs send it
    nothing, one warning says which hub and why, status shows it; polls go on at the feed's
    interval. A process that allows private hubs subscribes and clears the refusal."""
    rig.feeds.set("/a.xml", feed_xml(rig.feeds, ("g1", "Weather")))
    assert (await rig.a.poller.poll(rig.a.poller.feeds["a"])).outcome == "ok"
    async with httpx.AsyncClient(timeout=10) as client:
        one = service(rig, client, allow_private=False)
        two = service(rig, client, allow_private=False)
        with caplog.at_level(logging.INFO, logger="daemon"):
            for process in (one, two, one, two):
                assert await process.tick() == []
    assert rig.hub.requests == []
    assert refusals(caplog) == [
        {
            "feed": "a",
            "action": "refuse",
            "hub": rig.hub.url,
            "reason": LOOPBACK_REFUSED,
            "other_hubs": 0,
        }
    ]
    shown = await status.gather(rig.redis, config(rig, tmp_path), now=rig.clock().timestamp())
    [row] = shown["websub"]["subscriptions"]
    assert (row["feed"], row["state"], row["hub"]) == ("a", "refused", rig.hub.url)
    assert row["error"] == LOOPBACK_REFUSED and shown["websub"]["counts"] == {"refused": 1}
    table = status.format_table(shown)
    assert "websub: 1 feed with a hub: 1 refused" in table and LOOPBACK_REFUSED in table

    rig.clock.advance(60)  # no subscription: polled at its own interval
    polled = await rig.a.poller.poll(rig.a.poller.feeds["a"], scheduled=True)
    assert polled.outcome == "unchanged"
    assert await rig.a.websub.tick() == [("a", "subscribe")]  # allowed here
    assert rig.hub.wait_request()["hub.mode"] == "subscribe"
    _, refused = await WebSubStore(rig.redis, KEYS).links_and_refusal("a")
    assert refused is None


async def test_name_resolving_to_a_private_address_is_refused_another_hub_serves(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Names are resolved (off the loop, once per pass) and every address judged; of two hubs
    the allowed one is kept."""
    names = Names({"hub.corp": ["10.9.8.7"], "hub.example": ["93.184.216.34"]})
    rig.feeds.set("/a.xml", hub_feed(rig.feeds, "http://hub.corp/hub"))
    await rig.a.poller.poll(rig.a.poller.feeds["a"])
    async with httpx.AsyncClient(timeout=10) as client:
        strict = service(rig, client, allow_private=False, resolve=names)
        with caplog.at_level(logging.INFO, logger="daemon"):
            assert await strict.tick() == []
        [refused] = refusals(caplog)
        assert refused["reason"] == "hub.corp resolves to 10.9.8.7, a private address"
        assert refused["hub"] == "http://hub.corp/hub"
        # Two hubs, the first private: the second one is the one subscribed to.
        links = FeedLinks(("http://hub.corp/hub", "https://hub.example/hub"), "https://a/")
        known = Refusal("http://hub.corp/hub", str(refused["reason"]))
        kept = await strict._screen("a", links, known)
        assert kept == FeedLinks(("https://hub.example/hub",), "https://a/")
    assert names.asked == ["hub.corp", "hub.example"]
    assert rig.hub.requests == []


async def test_an_allowed_hub_name_is_contacted_at_the_checked_address(rig: Rig) -> None:
    """With private hubs allowed, a hub name that resolves to 127.0.0.1 is subscribed to over
    a connection to that very address, the name in the Host header; a name that does not
    resolve is a failed request, retried later, and polling is not affected."""
    port = rig.feeds.url("/hub").split(":")[2].split("/")[0]
    names = Names({"hub.test": ["127.0.0.1"]})
    rig.feeds.set("/a.xml", hub_feed(rig.feeds, f"http://hub.test:{port}/hub"))
    await rig.a.poller.poll(rig.a.poller.feeds["a"])
    async with httpx.AsyncClient(timeout=10) as client:
        lax = service(rig, client, allow_private=True, resolve=names)
        assert await lax.tick() == [("a", "subscribe")]
        request = rig.hub.wait_request()
        assert request["hub.topic"] == rig.feeds.url("/a.xml")
        [sent] = [r for r in rig.feeds.requests if r.path == "/hub"]
        assert sent.headers["host"] == f"hub.test:{port}"
        status_, _ = await asyncio.to_thread(rig.hub.verify, request)
        assert status_ == 200
        sub = await lax.store.load("a")
        assert sub is not None and sub.hub == f"http://hub.test:{port}/hub"

        names.answers = {}  # the name stops resolving: the renewal fails, is retried
        rig.clock.advance(LEASE * RENEW_FRACTION)
        assert await lax.tick() == [("a", "renew")]
        sub = await lax.store.load("a")
        assert sub is not None and sub.state == "active" and sub.retry_at > 0
        assert sub.error == "cannot resolve hub.test: Name or service not known"
    assert len(rig.hub.requests) == 1


async def test_subscribed_hub_now_refused_gets_no_request_and_is_dropped(rig: Rig) -> None:
    """A subscription made while private hubs were allowed: a process that does not allow
    them sends the hub nothing, not even the unsubscription, and drops the record."""
    await subscribed(rig)
    async with httpx.AsyncClient(timeout=10) as client:
        strict = service(rig, client, allow_private=False)
        assert await strict.tick() == [("a", "unsubscribe")]
        sub = await strict.store.load("a")
        assert sub is not None and sub.state == "unsubscribing"
        assert sub.error == f"hub refused: {LOOPBACK_REFUSED}"
        rig.clock.advance(VERIFY_TIMEOUT)
        assert await strict.tick() == [("a", "drop")]
    assert len(rig.hub.requests) == 1  # the subscription only
    assert await rig.a.websub.store.load("a") is None


async def test_status_shows_state_lease_and_last_push(rig: Rig, tmp_path: Path) -> None:
    """From the records in Redis: pending, verified with its lease end and the time of the
    last good push, expiring once past its renewal time, renewing, verified again."""
    cfg = config(rig, tmp_path)

    async def row() -> dict[str, object]:
        shown = await status.gather(rig.redis, cfg, now=rig.clock().timestamp())
        [only] = shown["websub"]["subscriptions"]
        return dict(only)

    empty = await status.gather(rig.redis, cfg, now=rig.clock().timestamp())
    assert empty["websub"] == {"enabled": True, "counts": {}, "subscriptions": []}
    assert "websub: no feed advertises a hub" in status.format_table(empty)

    rig.feeds.set("/a.xml", feed_xml(rig.feeds, ("g1", "Weather")))
    await rig.a.poller.poll(rig.a.poller.feeds["a"])
    assert (await row())["state"] == "discovered"
    assert await rig.a.websub.tick() == [("a", "subscribe")]
    pending = await row()
    assert pending["state"] == "pending" and pending["expires_at"] is None
    assert pending["last_push"] is None
    request = rig.hub.wait_request()
    assert (await asyncio.to_thread(rig.hub.verify, request))[0] == 200
    verified_at = rig.clock().timestamp()
    rig.clock.advance(300)
    push = feed_xml(rig.feeds, ("g2", "Kursk"))
    assert await asyncio.to_thread(rig.hub.publish, request["hub.topic"], push) == [202]
    assert await rig.a.poller.drain(10)
    verified = await row()
    assert verified == {
        "feed": "a",
        "configured": True,
        "state": "verified",
        "hub": rig.hub.url,
        "topic": rig.feeds.url("/a.xml"),
        "expires_at": verified_at + LEASE,
        "last_push": verified_at + 300,
        "requested_at": verified_at,
        "retry_at": None,
        "attempts": 0,
        "error": None,
    }
    rig.clock.advance(120)
    shown = await status.gather(rig.redis, cfg, now=rig.clock().timestamp())
    table = status.format_table(shown)
    assert "websub: 1 feed with a hub: 1 verified" in table
    line = next(ln for ln in table.splitlines() if ln.startswith("a ") and "verified" in ln)
    assert rig.hub.url in line and "in 23h53m" in line and "2m ago" in line, table
    assert json.loads(json.dumps(shown))["websub"]["counts"] == {"verified": 1}

    rig.clock.advance(LEASE * RENEW_FRACTION)
    assert (await row())["state"] == "expiring"
    assert await rig.a.websub.tick() == [("a", "renew")]
    assert (await row())["state"] == "renewing"
    assert (await asyncio.to_thread(rig.hub.verify, rig.hub.wait_request(2)))[0] == 200
    renewed = await row()
    assert renewed["state"] == "verified" and renewed["last_push"] == verified_at + 300
    rig.clock.advance(LEASE)
    assert (await row())["state"] == "expired"
