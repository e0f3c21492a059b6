"""A final write (a poll's state commit, a lease's release) whose caller is cancelled — a second
SIGTERM — still runs to its end, and if Redis then fails it, the failure is retrieved: no
orphaned task logs "Task exception was never retrieved" (real Redis: writes paused with
``CLIENT PAUSE WRITE``, then the writer's connection killed)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis

from daemon.poll.leases import Leases
from daemon.poll.state import Commit, FeedStore
from daemon.redis.keys import Keys

KEYS = Keys("fw")
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.execute_command("CLIENT", "UNPAUSE")
    await client.aclose()


async def cancel_mid_write(
    admin: aioredis.Redis, write: Callable[[], Awaitable[Any]]
) -> list[dict[str, Any]]:
    """Start ``write`` with writes paused, cancel its caller while Redis holds it, kill the
    writer's connection; returns what reached the loop's exception handler."""
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: unhandled.append(ctx))
    await admin.execute_command("CLIENT", "PAUSE", 10_000, "WRITE")
    caller = asyncio.create_task(write())  # type: ignore[arg-type]

    async def held() -> list[int]:  # the connection Redis holds the write of
        return [int(c["id"]) for c in await admin.client_list() if "b" in c["flags"]]

    async with asyncio.timeout(10):
        while not (blocked := await held()):  # noqa: ASYNC110 (Redis is polled, not us)
            await asyncio.sleep(0.01)
    caller.cancel()
    await asyncio.sleep(0)  # the cancellation reaches the caller
    await admin.execute_command("CLIENT", "KILL", "ID", blocked[0])
    await admin.execute_command("CLIENT", "UNPAUSE")
    with pytest.raises(asyncio.CancelledError):
        await caller
    for _ in range(3):  # let an orphaned write end, then collect it
        await asyncio.sleep(0.05)
        gc.collect()
    loop.set_exception_handler(None)
    return unhandled


async def test_a_cancelled_commit_that_fails_leaves_no_orphan(
    redis_url: str, admin: aioredis.Redis
) -> None:
    writer = aioredis.Redis.from_url(redis_url)
    store = FeedStore(writer, KEYS)
    try:
        unhandled = await cancel_mid_write(
            admin, lambda: store.commit("f", Commit(outcome="ok", now=NOW))
        )
    finally:
        await writer.aclose()
    assert unhandled == []


async def test_a_cancelled_lease_release_that_fails_leaves_no_orphan(
    redis_url: str, admin: aioredis.Redis
) -> None:
    writer = aioredis.Redis.from_url(redis_url)
    leases = Leases(writer, KEYS, "me")
    try:
        assert await leases.acquire("f", 30)
        unhandled = await cancel_mid_write(admin, lambda: leases.release("f"))
    finally:
        await writer.aclose()
    assert unhandled == []
