"""Soak-lite: 300 alerts through a notifier failing 30% of sends at random (seeded)."""

from __future__ import annotations

import asyncio
from collections import Counter

import redis.asyncio as aioredis

from alerts.consumer import Consumer
from alerts.testing import FlakyNotifier, RecordingNotifier
from tests.delivery.helpers import KEYS, dispatcher, make_alert, publish, running, runtimes
from tests.delivery.helpers import settings as make_settings


async def test_every_alert_delivered_exactly_once_per_notifier(r: aioredis.Redis) -> None:
    """With retries enough, each alert reaches each notifier once and nothing is dead."""
    flaky = FlakyNotifier("flaky", FlakyNotifier.Options(ratio=0.3, seed=1234))
    rec = RecordingNotifier("rec")
    s = make_settings(max_attempts=40, concurrency=16, read_count=50)
    consumers = [
        Consumer(r, KEYS, dispatcher(r, runtimes(flaky, rec), s), s, name=f"c{i}") for i in range(2)
    ]
    ids = [await publish(r, make_alert(n, ["flaky", "rec"])) for n in range(300)]
    async with running(consumers[0]), running(consumers[1]):
        async with asyncio.timeout(15):
            await consumers[0].drain(until_ids=ids)
    expected = {f"alert-{n}": 1 for n in range(300)}
    assert Counter(a.id for a in flaky.sent) == expected
    assert Counter(a.id for a in rec.sent) == expected
    assert flaky.failures > 50  # the flakiness really happened
    assert await r.xlen(KEYS.dead) == 0
    assert await consumers[0].pending_count() == 0
