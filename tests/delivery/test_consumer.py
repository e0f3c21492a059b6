"""Consumer: reading, acking, own-pending recovery, XAUTOCLAIM, NOGROUP and connection loss."""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from alerts.base import Notifier
from alerts.consumer import Consumer, stream_id
from alerts.dlq import dlq_list
from alerts.testing import RecordingNotifier
from alerts.wire import Alert
from tests.delivery.helpers import (
    KEYS,
    dispatcher,
    make_alert,
    publish,
    running,
    runtimes,
    settings,
)
from tests.support.redis_topologies import aclient


def consumer(r: aioredis.Redis, *notifiers: Notifier, name: str = "c1", **over: object) -> Consumer:
    s = settings(**over)
    return Consumer(r, KEYS, dispatcher(r, runtimes(*notifiers), s), s, name=name)


async def wait_until(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
    """Poll an async predicate (bounded by 5 s)."""
    async with asyncio.timeout(5):
        while True:
            if await predicate():
                return
            await asyncio.sleep(0.01)


async def test_delivers_each_entry_once_and_acks(r: aioredis.Redis) -> None:
    """N published alerts: each delivered exactly once, nothing left pending."""
    rec = RecordingNotifier("rec")
    c = consumer(r, rec)
    ids = [await publish(r, make_alert(i)) for i in range(25)]
    async with running(c):
        async with asyncio.timeout(5):
            await c.drain(until_ids=ids)
    assert sorted(a.id for a in rec.sent) == sorted(f"alert-{i}" for i in range(25))
    assert await c.pending_count() == 0


async def test_drain_without_ids_waits_for_the_whole_stream(r: aioredis.Redis) -> None:
    """drain() with no ids returns once everything now in the stream is acknowledged."""
    rec = RecordingNotifier("rec")
    c = consumer(r, rec)
    for i in range(5):
        await publish(r, make_alert(i))
    async with running(c):
        async with asyncio.timeout(5):
            await c.drain()
    assert len(rec.sent) == 5 and await c.pending_count() == 0


async def test_drain_returns_at_once_on_an_empty_stream(r: aioredis.Redis) -> None:
    """Nothing published: drain() has nothing to wait for."""
    c = consumer(r, RecordingNotifier("rec"))
    async with asyncio.timeout(1):
        await c.drain()
        await c.drain(until_ids=[])


async def test_drain_waits_for_entries_still_pending(r: aioredis.Redis) -> None:
    """An entry read but not acked keeps drain(until_ids) waiting."""
    c = consumer(r, RecordingNotifier("rec"))
    await c.ensure_group()
    entry = await publish(r, make_alert(1))
    await r.xreadgroup(KEYS.group, "other", {KEYS.alerts: ">"})
    assert not await c._acked([entry], whole_prefix=False)
    await r.xack(KEYS.alerts, KEYS.group, entry)
    assert await c._acked([entry], whole_prefix=False)


async def test_restart_redelivers_own_pending_but_skips_done_notifiers(r: aioredis.Redis) -> None:
    """After a crash, the same consumer name re-reads its pending entries; done notifiers skip."""
    rec, other = RecordingNotifier("rec"), RecordingNotifier("other")
    c = consumer(r, rec, other, name="host-1")
    await c.ensure_group()
    ids = [await publish(r, make_alert(i, ["rec", "other"])) for i in range(3)]
    # the crashed run: read everything, delivered alert-0 to "rec" only, acked nothing
    await r.xreadgroup(KEYS.group, "host-1", {KEYS.alerts: ">"}, count=10)
    await r.sadd(KEYS.delivered("alert-0"), "rec")
    assert await c.pending_count() == 3
    async with running(c):
        async with asyncio.timeout(5):
            await c.drain(until_ids=ids)
    assert sorted(a.id for a in rec.sent) == ["alert-1", "alert-2"]
    assert sorted(a.id for a in other.sent) == ["alert-0", "alert-1", "alert-2"]
    assert await c.pending_count() == 0


async def test_janitor_claims_entries_of_a_dead_consumer(r: aioredis.Redis) -> None:
    """Entries idle longer than claim_after under another name are claimed and delivered."""
    rec = RecordingNotifier("rec")
    c = consumer(r, rec, name="alive", claim_after=0.05)
    await c.ensure_group()
    ids = [await publish(r, make_alert(i)) for i in range(4)]
    await r.xreadgroup(KEYS.group, "dead", {KEYS.alerts: ">"}, count=10)
    async with running(c):
        async with asyncio.timeout(5):
            await c.drain(until_ids=ids)
    assert sorted(a.id for a in rec.sent) == [f"alert-{i}" for i in range(4)]
    consumers = await r.xinfo_consumers(KEYS.alerts, KEYS.group)
    assert {x["name"]: x["pending"] for x in consumers}[b"dead"] == 0


async def test_held_entries_are_touched_so_they_are_not_stolen(r: aioredis.Redis) -> None:
    """A delivery held longer than claim_after is kept fresh by touch(): nobody claims it."""
    rec = RecordingNotifier("rec")
    rec.gate = asyncio.Event()
    holder = consumer(r, rec, name="holder", claim_after=3600)
    thief = consumer(r, RecordingNotifier("rec"), name="thief", claim_after=0.05)
    entry = await publish(r, make_alert(1))
    async with running(holder):
        await wait_until(lambda: _true(rec.calls == 1), "held in flight")
        await asyncio.sleep(0.1)  # let the entry's idle time exceed the thief's claim_after
        assert await holder.touch() == 1
        assert await thief.claim_idle() == 0
        rec.gate.set()
        async with asyncio.timeout(5):
            await holder.drain(until_ids=[entry])
    assert len(rec.sent) == 1


async def _true(value: bool) -> bool:
    return value


async def test_undecodable_entry_is_dead_lettered_and_acked(r: aioredis.Redis) -> None:
    """Bad JSON, a wrong version or a missing field: dead letter 'decode', ack, carry on."""
    rec = RecordingNotifier("rec")
    c = consumer(r, rec)
    bad = [
        await r.xadd(KEYS.alerts, {"data": b"{not json"}),
        await r.xadd(KEYS.alerts, {"data": b'{"v": 99}'}),
        await r.xadd(KEYS.alerts, {"other": b"x"}),
    ]
    good = await publish(r, make_alert(1))
    async with running(c):
        async with asyncio.timeout(5):
            await c.drain(until_ids=[good, *(b.decode() for b in bad)])
    assert [a.id for a in rec.sent] == ["alert-1"]
    dead = {d.source_id: d for d in await dlq_list(r, KEYS)}
    assert sorted(dead) == sorted(b.decode() for b in bad)
    assert {d.reason for d in dead.values()} == {"decode"}
    assert dead[bad[0].decode()].data == "{not json" and dead[bad[0].decode()].notifier == ""
    assert await c.pending_count() == 0


async def test_deleted_pending_entry_is_acked(r: aioredis.Redis) -> None:
    """A pending entry whose body was deleted (trimmed) is acknowledged, not retried forever."""
    rec = RecordingNotifier("rec")
    c = consumer(r, rec, name="c1")
    await c.ensure_group()
    entry = await publish(r, make_alert(1))
    await r.xreadgroup(KEYS.group, "c1", {KEYS.alerts: ">"})
    await r.xdel(KEYS.alerts, entry)
    async with running(c):
        await wait_until(lambda: _zero(c), "acked")
    assert rec.sent == []


async def _zero(c: Consumer) -> bool:
    return await c.pending_count() == 0


async def test_recovers_after_flushall(r: aioredis.Redis) -> None:
    """Redis emptied mid-run (NOGROUP): the group is re-created and new alerts still flow."""
    rec = RecordingNotifier("rec")
    c = consumer(r, rec)
    first = await publish(r, make_alert(1))
    async with running(c):
        async with asyncio.timeout(5):
            await c.drain(until_ids=[first])
        await r.flushall()
        later = [await publish(r, make_alert(i)) for i in (2, 3)]
        async with asyncio.timeout(5):
            await c.drain(until_ids=later)
    assert sorted(a.id for a in rec.sent) == ["alert-1", "alert-2", "alert-3"]


async def test_recovers_after_its_connections_are_killed(r: aioredis.Redis, redis_url: str) -> None:
    """CLIENT KILL of the consumer's connections: it reconnects and keeps delivering."""
    rec = RecordingNotifier("rec")
    own = aclient(redis_url)
    s = settings()
    c = Consumer(own, KEYS, dispatcher(own, runtimes(rec), s), s, name="c1")
    first = await publish(r, make_alert(1))
    async with running(c):
        async with asyncio.timeout(5):
            await c.drain(until_ids=[first])
        if isinstance(r, RedisCluster):  # on every node (FEEDWATCH_TEST_REDIS=cluster)
            on_nodes = await r.client_kill_filter(
                _type="normal", skipme=True, target_nodes=RedisCluster.ALL_NODES
            )
            killed = sum(on_nodes.values()) if isinstance(on_nodes, dict) else on_nodes
        else:
            killed = await r.client_kill_filter(_type="normal", skipme=True)
        assert killed >= 1
        second = await publish(r, make_alert(2))
        async with asyncio.timeout(5):
            await c.drain(until_ids=[second])
    await own.aclose()
    assert [a.id for a in rec.sent] == ["alert-1", "alert-2"]


async def test_unreachable_redis_is_retried_until_stopped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With Redis down, run() logs and backs off instead of crashing, and stops on request."""
    dead = aioredis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    s = settings()
    c = Consumer(dead, KEYS, dispatcher(dead, {}, s), s, name="c1")
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="alerts.consumer"):
        task = asyncio.create_task(c.run(stop))
        await wait_until(lambda: _true(any("retrying" in m for m in caplog.messages)), "logged")
        assert not task.done()
        stop.set()
        async with asyncio.timeout(5):
            await task
    await dead.aclose()


async def test_stop_waits_for_in_flight_then_acks(r: aioredis.Redis) -> None:
    """Setting stop ends reading, but an in-flight delivery completes and is acked."""
    rec = RecordingNotifier("rec")
    rec.gate = asyncio.Event()
    c = consumer(r, rec)
    await publish(r, make_alert(1))
    stop = asyncio.Event()
    task = asyncio.create_task(c.run(stop))
    await wait_until(lambda: _true(rec.calls == 1), "in flight")
    stop.set()
    await asyncio.sleep(0.1)  # the read loop has ended; the delivery is still held
    assert not task.done()
    rec.gate.set()
    async with asyncio.timeout(5):
        await task
    assert len(rec.sent) == 1 and await c.pending_count() == 0


async def test_cancel_during_grace_leaves_the_entry_pending(r: aioredis.Redis) -> None:
    """Cancelling run() with a delivery in flight ends cleanly; the entry stays pending."""
    rec = RecordingNotifier("rec")
    rec.gate = asyncio.Event()
    c = consumer(r, rec)
    await publish(r, make_alert(1))
    stop = asyncio.Event()
    task = asyncio.create_task(c.run(stop))
    await wait_until(lambda: _true(rec.calls == 1), "in flight")
    stop.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rec.sent == [] and await c.pending_count() == 1


class Gauge(Notifier):
    """Tracks how many sends run at once."""

    def __init__(self, name: str) -> None:
        super().__init__(name, Notifier.Options(), http=None)  # type: ignore[arg-type]
        self.now = self.peak = self.done = 0

    async def send(self, alert: Alert) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)
        for _ in range(5):
            await asyncio.sleep(0)
        self.now -= 1
        self.done += 1


async def test_concurrency_bounds_alerts_in_flight(r: aioredis.Redis) -> None:
    """No more than `concurrency` deliveries run at once."""
    gauge = Gauge("rec")
    c = consumer(r, gauge, concurrency=3)
    ids = [await publish(r, make_alert(i)) for i in range(20)]
    async with running(c):
        async with asyncio.timeout(5):
            await c.drain(until_ids=ids)
    assert gauge.done == 20 and 1 <= gauge.peak <= 3


def test_stream_ids_order_numerically() -> None:
    """Stream ids compare by (ms, seq), not as strings."""
    assert stream_id("9-1") < stream_id("10-0") and stream_id(b"5") == (5, 0)
