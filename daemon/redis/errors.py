"""Which of redis-py's exceptions mean "the store failed": decided once, here.

redis-py roots most of its errors in ``RedisError``, but not all: with Redis Cluster,
``RedisClusterException`` and its subclasses (``RedisClusterUnreachableError`` when no node
answers, ``SlotNotCoveredError`` while slots move, ``CrossSlotTransactionError``…) are plain
``Exception`` s. Sentinel's ``MasterNotFoundError`` and ``SlaveNotFoundError`` are
``ConnectionError`` s, so ``RedisError`` covers them.

Every place that talks to Redis (polls, leases, peers, stories, publish, delivery, status,
health) catches ``STORE_ERRORS`` and wraps what it caught in ``daemon.errors.StoreError``
(``raise … from e``): a cluster outage is ``error:store``, logged and retried, never
``error:internal``. ``UNAVAILABLE`` is the subset that says "nothing answers now, try again"
rather than "the server answered with an error".
"""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

STORE_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException)
UNAVAILABLE: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    RedisClusterException,
)

__all__ = ["STORE_ERRORS", "UNAVAILABLE"]
