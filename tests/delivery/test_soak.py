"""Soak tests: many alerts through failing notifiers, nothing lost, nothing sent twice.

* soak-lite: 300 alerts through a notifier failing 30% of sends at random (seeded);
* the webhook soak: 1,000 alerts published by the real ``Publisher`` and delivered by the real
  webhook notifier to a local HTTP server that answers 500 to 30% of requests at random (seeded)
  and 429 whenever its token bucket is empty.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from alerts.consumer import Consumer
from alerts.dispatch import DeliverySettings, Dispatcher, NotifierRuntime
from alerts.testing import FlakyNotifier, RecordingNotifier
from alerts.webhook import WebhookNotifier, WebhookOptions
from alerts.wire import Alert, AlertItem, AlertMatch, AlertRule
from daemon.publish.stream import Publisher, alert_id
from tests.delivery.helpers import KEYS, dispatcher, make_alert, publish, running, runtimes
from tests.delivery.helpers import settings as make_settings
from tests.support.httpserver import FeedServer, Request, Response


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


# -- the webhook soak ------------------------------------------------------------------------

SOAK_ALERTS = 1_000
FAIL_RATIO = 0.3
BUCKET_SIZE = 10  # requests allowed in a burst…
BUCKET_RATE = 300.0  # …and refilled at this many per second; an empty bucket answers 429


@dataclass
class ChaosHook:
    """A webhook receiver: 429 when its token bucket is empty, else 500 for a seeded random
    30% of requests, else 200 (and the Idempotency-Key is recorded)."""

    seed: int
    requests: int = 0
    server_errors: int = 0
    rate_limited: int = 0
    accepted: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(self.seed)
        self._tokens = float(BUCKET_SIZE)
        self._refilled = time.monotonic()

    def __call__(self, req: Request) -> Response:
        key = req.headers.get("idempotency-key", "")
        with self._lock:
            self.requests += 1
            now = time.monotonic()
            self._tokens = min(BUCKET_SIZE, self._tokens + (now - self._refilled) * BUCKET_RATE)
            self._refilled = now
            if self._tokens < 1:
                self.rate_limited += 1
                return Response(429, b"slow_down", {"Retry-After": "0"}, "text/plain")
            self._tokens -= 1
            if self._random.random() < FAIL_RATIO:
                self.server_errors += 1
                return Response(500, b"oops", content_type="text/plain")
            self.accepted[key] += 1
        return Response(200, b"ok", content_type="text/plain")


def soak_alert(n: int, created: datetime) -> Alert:
    """Alert number ``n``, id derived from (rule, feed, item) as the poller derives it."""
    item = f"https://news.example/kursk/{n}"
    return Alert(
        id=alert_id("kursk", "wire", item),
        rule=AlertRule(id="kursk", title="Kursk offensive", severity="high"),
        item=AlertItem(
            id=item,
            title=f"Troops advance near Sudzha ({n})",
            link=item,
            excerpt="Ukrainian forces advanced in the Kursk region…",
            published=created,
            feed="wire",
        ),
        matches=(AlertMatch(term="kursk", field="title", start=0, end=5),),
        created=created,
        notify=("hook",),
    )


@pytest.mark.slow
async def test_webhook_soak_every_alert_arrives_once_and_nothing_is_dead(
    r: aioredis.Redis, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """1,000 alerts, a webhook failing 30% at random and rate-limiting: all arrive, none twice,
    the dead-letter stream is empty and nothing is pending."""
    hook = ChaosHook(seed=20240810)
    feed_server.set_handler("/hook", hook)
    s = DeliverySettings(
        max_attempts=20,
        backoff_initial=0.002,
        backoff_max=0.02,
        claim_after=5.0,
        concurrency=16,
        read_count=50,
        block_ms=50,
    )
    started = time.perf_counter()
    async with httpx.AsyncClient(follow_redirects=False) as http:
        webhook = WebhookNotifier(
            "hook", WebhookOptions(url=SecretStr(feed_server.url("/hook")), timeout=10), http=http
        )
        notifiers = {"hook": NotifierRuntime("hook", webhook)}
        consumers = [
            Consumer(r, KEYS, Dispatcher(r, KEYS, notifiers, s), s, name=f"c{i}") for i in range(2)
        ]
        publisher = Publisher(r, KEYS)
        created = datetime.now(UTC)
        alerts = [soak_alert(n, created) for n in range(SOAK_ALERTS)]
        entry_ids: list[str] = []
        async with running(consumers[0]), running(consumers[1]):
            for i in range(0, SOAK_ALERTS, 100):  # published while the consumers deliver
                published = await publisher.publish(alerts[i : i + 100])
                entry_ids += [p.entry_id for p in published if p.entry_id is not None]
            async with asyncio.timeout(90):
                await consumers[0].drain(until_ids=entry_ids)
        pending = await consumers[0].pending_count()
    seconds = time.perf_counter() - started

    duplicates = sum(n - 1 for n in hook.accepted.values() if n > 1)
    with capsys.disabled():
        print(
            f"\nwebhook soak: {SOAK_ALERTS} alerts, {hook.requests} requests, "
            f"{hook.server_errors} x 500, {hook.rate_limited} x 429, "
            f"{duplicates} duplicates, {seconds:.1f} s"
        )
    assert len(entry_ids) == SOAK_ALERTS
    assert set(hook.accepted) == {a.id for a in alerts}  # every alert answered 200
    assert duplicates == 0
    assert await r.xlen(KEYS.dead) == 0
    assert pending == 0
    assert hook.server_errors > 0  # the failures really happened
    assert feed_server.errors == []
