"""redis-py's exceptions that mean "the store failed" are decided in one place."""

from __future__ import annotations

import pytest
from redis.asyncio.sentinel import MasterNotFoundError, SlaveNotFoundError
from redis.exceptions import (
    ConnectionError,
    CrossSlotTransactionError,
    RedisClusterException,
    RedisClusterUnreachableError,
    ResponseError,
    SlotNotCoveredError,
    TimeoutError,
)

from daemon.redis.errors import STORE_ERRORS, UNAVAILABLE


@pytest.mark.parametrize(
    "error",
    [
        RedisClusterUnreachableError("no node answers"),
        SlotNotCoveredError("slot 5 is not covered"),
        CrossSlotTransactionError("keys in two slots"),
        RedisClusterException("cannot discover the cluster"),
        MasterNotFoundError("no master"),
        SlaveNotFoundError("no replica"),
        ConnectionError("refused"),
        TimeoutError("timed out"),
        ResponseError("WRONGTYPE"),
    ],
)
def test_every_redis_py_failure_is_a_store_error(error: Exception) -> None:
    """Cluster errors are not RedisErrors in redis-py 8; they are store errors all the same."""
    assert isinstance(error, STORE_ERRORS)


def test_unavailable_is_nothing_answers_not_an_answered_error() -> None:
    assert isinstance(RedisClusterUnreachableError("x"), UNAVAILABLE)
    assert isinstance(MasterNotFoundError("x"), UNAVAILABLE)
    assert not isinstance(ResponseError("WRONGTYPE"), UNAVAILABLE)
