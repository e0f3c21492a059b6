"""The pure "what is new?" decider (lemon24/reader's Decider idea). No I/O, no clock of its own.

Given the items a feed holds now and which of them the feed's memory has seen, decide which are
new, which of the new ones may alert, and whether the feed looks like it overflowed its window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from daemon.types import Item


@dataclass(frozen=True, slots=True)
class Decision:
    """``new``: items never seen before (all get recorded as seen).
    ``alertable``: the new items that may raise alerts (a subset of ``new``).
    ``overflow``: every item was new on a feed we polled before: items may have been missed.
    """

    new: tuple[Item, ...]
    alertable: tuple[Item, ...]
    overflow: bool


def decide(
    items: Sequence[Item],
    seen: Sequence[bool],
    *,
    first_poll: bool,
    backfill: float | None,
    now: datetime,
    baseline: bool = False,
) -> Decision:
    """Which of ``items`` are new and which of those may alert.

    ``seen[i]`` tells whether ``items[i]`` is in the feed's memory. On a feed's first poll only
    items published within ``backfill`` seconds of ``now`` may alert (``None`` = all of them,
    ``0`` = none; undated items never, since their age is unknown). ``baseline`` (Redis lost its
    state) records everything as seen and alerts on nothing.
    """
    if len(items) != len(seen):
        raise ValueError("items and seen differ in length")
    new = tuple(item for item, was_seen in zip(items, seen, strict=True) if not was_seen)
    if baseline:
        alertable: tuple[Item, ...] = ()
    elif first_poll:
        alertable = tuple(i for i in new if _within_backfill(i, backfill, now))
    else:
        alertable = new
    overflow = not first_poll and not baseline and len(items) >= 2 and len(new) == len(items)
    return Decision(new=new, alertable=alertable, overflow=overflow)


def _within_backfill(item: Item, backfill: float | None, now: datetime) -> bool:
    if backfill is None:
        return True
    if backfill <= 0 or item.published is None:
        return False
    return now - item.published <= timedelta(seconds=backfill)


def next_poll_delay(
    interval: float,
    error_streak: int,
    *,
    max_backoff: float,
    retry_after: float | None = None,
) -> float:
    """Seconds until a feed may be polled again.

    After a success (``error_streak`` 0) that is the interval. After failures it doubles per
    failure, capped at ``max_backoff`` (and never below the interval); a server's
    ``Retry-After`` is honoured as a floor, capped at ``max_backoff`` too.
    """
    if error_streak <= 0:
        delay = interval
    else:
        delay = min(max(max_backoff, interval), interval * (2 ** min(error_streak, 30)))
    if retry_after is not None:
        delay = max(delay, min(retry_after, max(max_backoff, interval)))
    return delay
