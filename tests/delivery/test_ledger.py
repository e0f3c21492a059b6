"""The delivery ledger's Lua steps and ``deliver(..., ack=True)``: counts, markers, acks."""

from __future__ import annotations

import asyncio
import contextlib

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from alerts.base import Notifier
from alerts.dlq import dlq_list
from alerts.ledger import Ledger
from alerts.testing import FailingNotifier, RecordingNotifier
from alerts.wire import Alert
from daemon.errors import NotifyError
from tests.delivery.helpers import KEYS, dispatcher, make_alert, publish, runtimes, settings


async def read_one(r: aioredis.Redis, alert: Alert) -> str:
    """Publish ``alert`` and read it into the group, so its entry is pending; its id."""
    with contextlib.suppress(ResponseError):  # BUSYGROUP: already there
        await r.xgroup_create(KEYS.alerts, KEYS.group, id="0", mkstream=True)
    entry = await publish(r, alert)
    await r.xreadgroup(KEYS.group, "c1", {KEYS.alerts: ">"}, count=1)
    return entry


async def pending(r: aioredis.Redis) -> int:
    return int((await r.xpending(KEYS.alerts, KEYS.group))["pending"])


class CountReader(Notifier):
    """Reads its own attempt count from Redis while sending: what a crash would leave."""

    def __init__(self, name: str, r: aioredis.Redis) -> None:
        super().__init__(name, Notifier.Options(), http=None)  # type: ignore[arg-type]
        self.r = r
        self.seen: list[bytes | str | None] = []

    async def send(self, alert: Alert) -> None:
        self.seen.append(await self.r.hget(KEYS.attempts(alert.id), self.name))


async def test_ack_goes_with_the_delivered_marker(r: aioredis.Redis) -> None:
    """deliver(ack=True): the entry is acknowledged and the notifier marked delivered."""
    rec = RecordingNotifier("rec")
    entry = await read_one(r, make_alert(1))
    out = await dispatcher(r, runtimes(rec)).deliver(entry, make_alert(1), ack=True)
    assert out.acked and out.delivered == ("rec",)
    assert await pending(r) == 0
    assert await r.smembers(KEYS.delivered("alert-1")) == {b"rec"}
    assert 0 < await r.ttl(KEYS.delivered("alert-1")) <= 7 * 86400


async def test_without_ack_the_entry_stays_pending(r: aioredis.Redis) -> None:
    """deliver() without ack leaves acknowledging to the caller."""
    entry = await read_one(r, make_alert(1))
    out = await dispatcher(r, runtimes(RecordingNotifier("rec"))).deliver(entry, make_alert(1))
    assert not out.acked and await pending(r) == 1


async def test_ack_waits_for_every_notifier(r: aioredis.Redis) -> None:
    """A fast notifier's success does not ack while another routed notifier is in flight."""
    fast, slow = RecordingNotifier("fast"), RecordingNotifier("slow")
    slow.gate = asyncio.Event()
    alert = make_alert(1, ["fast", "slow"])
    entry = await read_one(r, alert)
    task = asyncio.create_task(dispatcher(r, runtimes(fast, slow)).deliver(entry, alert, ack=True))
    async with asyncio.timeout(5):
        await fast.wait_for(1)
        while not await r.sismember(KEYS.delivered("alert-1"), "fast"):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    assert await pending(r) == 1
    slow.gate.set()
    async with asyncio.timeout(5):
        out = await task
    assert out.acked and sorted(out.delivered) == ["fast", "slow"]
    assert await pending(r) == 0
    assert await r.smembers(KEYS.delivered("alert-1")) == {b"fast", b"slow"}


async def test_a_dead_letter_last_still_acks(r: aioredis.Redis) -> None:
    """When the last notifier to finish was dead-lettered, the entry is acknowledged anyway."""
    rec = RecordingNotifier("rec")
    bad = FailingNotifier("bad", FailingNotifier.Options(recoverable=False, reason="client"))
    alert = make_alert(1, ["rec", "bad", "ghost"])
    entry = await read_one(r, alert)
    out = await dispatcher(r, runtimes(rec, bad)).deliver(entry, alert, ack=True)
    assert out.acked and out.delivered == ("rec",) and sorted(out.dead) == ["bad", "ghost"]
    assert await pending(r) == 0
    assert sorted(d.notifier for d in await dlq_list(r, KEYS)) == ["bad", "ghost"]


async def test_only_skipped_and_filtered_notifiers_still_ack(r: aioredis.Redis) -> None:
    """Nothing to send (already delivered, severity too low): the entry is acknowledged."""
    done, pager = RecordingNotifier("done"), RecordingNotifier("pager")
    rts = {**runtimes(done), **runtimes(pager, min_severity="critical")}
    alert = make_alert(1, ["done", "pager"], "low")
    await r.sadd(KEYS.delivered("alert-1"), "done")
    entry = await read_one(r, alert)
    out = await dispatcher(r, rts).deliver(entry, alert, ack=True)
    assert out.acked and out.skipped == ("done",) and out.filtered == ("pager",)
    assert await pending(r) == 0 and done.calls == pager.calls == 0


async def test_the_attempt_is_counted_before_the_send(r: aioredis.Redis) -> None:
    """While the first send runs, Redis already holds attempt 1 (a crash keeps the count)."""
    reader = CountReader("reader", r)
    await dispatcher(r, runtimes(reader)).deliver("1-0", make_alert(1, ["reader"]))
    assert reader.seen == [b"1"]
    assert await r.ttl(KEYS.attempts("alert-1")) > 0


async def test_retries_count_each_attempt_before_sending(r: aioredis.Redis) -> None:
    """Two failures then success: the attempt counter reads 1, 2, 3 at the three sends."""

    class Flaky(CountReader):
        async def send(self, alert: Alert) -> None:
            await super().send(alert)
            if len(self.seen) < 3:
                raise NotifyError("busy", recoverable=True, reason="server")

    flaky = Flaky("flaky", r)
    d = dispatcher(r, runtimes(flaky), settings(backoff_initial=0, backoff_max=0))
    out = await d.deliver("1-0", make_alert(1, ["flaky"]))
    assert out.delivered == ("flaky",) and flaky.seen == [b"1", b"2", b"3"]


async def test_prepare_counts_only_notifiers_that_will_send(r: aioredis.Redis) -> None:
    """prepare() counts an attempt for a fresh notifier, not for delivered, dead or used-up."""
    await r.sadd(KEYS.delivered("a"), "done")
    await r.hset(KEYS.attempts("a"), mapping={"dead#dead": "1", "spent": 3, "fresh": 1})
    ledger = Ledger(r, KEYS, 60)
    limits = {"done": 3, "dead": 3, "spent": 3, "fresh": 3, "new": 3}
    state, counted = await ledger.prepare("a", limits)
    assert counted == {"fresh": 2, "new": 1}
    assert state.delivered == {"done"} and state.is_dead("dead") and state.count("spent") == 3
    assert state.count("fresh") == 1  # the state is what Redis held before this attempt
    assert await r.hgetall(KEYS.attempts("a")) == {
        b"dead#dead": b"1",
        b"spent": b"3",
        b"fresh": b"2",
        b"new": b"1",
    }
    assert 0 < await r.ttl(KEYS.attempts("a")) <= 60


async def test_prepare_without_senders_only_reads(r: aioredis.Redis) -> None:
    """With no notifier about to send, prepare() writes nothing (no key, no TTL change)."""
    state, counted = await Ledger(r, KEYS, 60).prepare("b", {})
    assert counted == {} and state.delivered == set() and state.attempts == {}
    assert await r.exists(KEYS.attempts("b")) == 0
