"""Retry delays: capped exponential backoff with jitter. Pure; the randomness is injectable.

``backoff(n)`` is the wait after the n-th failed attempt (n starts at 1). The exponential
ceiling is ``min(maximum, initial * 2 ** (n - 1))`` and the delay is drawn uniformly from
``[initial, ceiling]`` ("full jitter" with a floor of ``initial``, so a retry never fires
immediately yet many failing senders spread out instead of retrying in lockstep).

A ``retry_after`` the target asked for (HTTP ``Retry-After``, SMTP 4xx hints) is honoured as a
floor, **capped at** ``maximum``: a server asking for an hour must not hold an alert in flight
for an hour. If it keeps refusing, the attempts run out and the alert goes to the dead-letter
stream, from where ``feedwatch dlq replay`` sends it again later.
"""

from __future__ import annotations

import random
from collections.abc import Callable

_MAX_EXPONENT = 60  # 2**60 seconds is already "forever"; keeps the float from overflowing


def backoff(
    attempt: int,
    *,
    initial: float,
    maximum: float,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based) before the next one.

    ``rand`` returns a float in ``[0, 1)`` (``random.random`` by default; inject a constant in
    tests). The result always lies in ``[min(initial, maximum), maximum]``.
    """
    initial = max(0.0, initial)
    maximum = max(0.0, maximum)
    floor = min(initial, maximum)
    exponent = min(max(attempt, 1) - 1, _MAX_EXPONENT)
    ceiling = min(maximum, initial * 2.0**exponent)
    delay = floor + (ceiling - floor) * min(max(rand(), 0.0), 1.0)
    if retry_after is not None and retry_after > delay:
        delay = min(retry_after, maximum)
    return delay
