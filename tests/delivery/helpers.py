"""Helpers for the delivery tests: alerts, publishing, settings, a running consumer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from alerts.consumer import Consumer
from alerts.dispatch import DeliverySettings, Dispatcher, NotifierRuntime
from alerts.wire import Alert, AlertItem, AlertMatch, AlertRule
from daemon.redis.keys import Keys

KEYS = Keys("t")
NOW = datetime(2024, 8, 10, 12, 0, tzinfo=UTC)


def make_alert(n: int, notify: Iterable[str] = ("rec",), severity: str = "high") -> Alert:
    """A small, valid alert number ``n``."""
    return Alert(
        id=f"alert-{n}",
        rule=AlertRule(id="kursk", title="Kursk offensive", severity=severity),
        item=AlertItem(
            id=f"item-{n}",
            title=f"Troops advance near Sudzha ({n})",
            link=f"https://news.example/{n}",
            excerpt="Ukrainian forces advanced in the Kursk region…",
            published=NOW,
            feed="wire",
        ),
        matches=(AlertMatch(term="kursk", field="title", start=0, end=5),),
        created=NOW,
        notify=tuple(notify),
    )


async def publish(r: aioredis.Redis, alert: Alert) -> str:
    """XADD the alert the way the publisher does; returns the entry id."""
    entry_id = await r.xadd(KEYS.alerts, {"data": alert.to_json()})
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


class Sleeps:
    """An injected ``sleep``: records the delays and yields to the loop without waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


def runtimes(*notifiers: Any, **policy: Any) -> dict[str, NotifierRuntime]:
    """NotifierRuntime per notifier, keyed by its name."""
    return {n.name: NotifierRuntime(n.name, n, **policy) for n in notifiers}


def settings(**over: Any) -> DeliverySettings:
    """Delivery settings fit for tests (short blocks, quick janitor)."""
    base: dict[str, Any] = {
        "block_ms": 50,
        "claim_after": 5.0,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
    }
    base.update(over)
    return DeliverySettings(**base)


def dispatcher(
    r: aioredis.Redis,
    notifiers: dict[str, NotifierRuntime],
    s: DeliverySettings | None = None,
    sleep: Callable[[float], Any] | None = None,
) -> Dispatcher:
    """A Dispatcher with a recording no-wait sleep and a fixed clock."""
    return Dispatcher(
        r,
        KEYS,
        notifiers,
        s or settings(),
        sleep=sleep or Sleeps(),
        rand=lambda: 0.5,
        clock=lambda: NOW,
    )


@asynccontextmanager
async def running(consumer: Consumer) -> AsyncIterator[asyncio.Task[None]]:
    """Run the consumer in a task; on exit stop it and wait (bounded) for it to end."""
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        yield task
    finally:
        stop.set()
        async with asyncio.timeout(5):
            await task
