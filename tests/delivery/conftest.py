"""Fixtures for the delivery tests: an asyncio Redis client on the session's real server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests.support.redis_topologies import aclient


@pytest.fixture
async def r(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An asyncio client (bytes replies) on the flushed test Redis."""
    client = aclient(redis_url)
    yield client
    await client.aclose()
