"""Final writes that a cancellation cannot cut in half.

A second SIGTERM cancels the polls and deliveries in flight (``daemon/runtime.py``); their last
writes (a poll's state commit, a lease's release, a delivered marker, a dead letter, an XACK)
must still run to their end, bounded, and their failure must never be left unretrieved in an
orphaned task ("Task exception was never retrieved").
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from daemon.errors import StoreError
from daemon.redis.errors import STORE_ERRORS

T = TypeVar("T")
COMMIT_TIMEOUT = 5.0
"""Seconds a shielded final write (state commit, delivered marker, dead letter, XACK) may take."""


async def committed(write: Callable[[], Awaitable[T]], *, limit: float = COMMIT_TIMEOUT) -> T:
    """Run a final write to completion even if the caller is cancelled meanwhile.

    The write runs in its own task bounded by ``limit`` seconds; if the caller is cancelled, we
    wait (at most ``limit``) for the write to finish, then let the cancellation through. Redis
    errors and the timeout become ``StoreError``.
    """

    async def bounded() -> T:
        try:
            async with asyncio.timeout(limit):
                return await write()
        except STORE_ERRORS + (TimeoutError,) as e:
            raise StoreError(f"final write failed: {type(e).__name__}: {e}") from e

    task = asyncio.ensure_future(bounded())
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task}, timeout=limit)
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: a failure here is moot, we are being cancelled
        raise
