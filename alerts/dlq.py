"""The dead-letter stream ``{p}:alerts:dead``: its record format, and list/show/replay/drop.

One record per failed (alert, notifier) pair, written by the dispatcher (permanent error,
attempts exhausted, notifier not configured) or the consumer (entry not decodable)::

    data       the alert's wire JSON (or the raw undecodable payload)
    notifier   the notifier instance that failed ("" for an undecodable entry)
    attempts   how many sends were tried
    error      the last error message
    reason     client | server | auth | rate_limited | timeout | transport | config |
               unexpected | decode
    failed_at  ISO-8601 UTC
    source_id  the id of the entry in the main stream

``dlq_replay`` sends an alert again to the notifier that failed, and only to it: the others
keep their delivered markers. These functions back ``feedwatch dlq list|show|replay|drop``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from alerts.wire import Alert
from daemon.errors import StoreError
from daemon.redis.errors import STORE_ERRORS
from daemon.redis.keys import Keys

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 2000
_PAGE = 100
_STREAM_ID = re.compile(r"\d{1,20}(-\d{1,20})?")


def attempts_field(notifier: str) -> str:
    """Field of ``{p}:attempts:<id>`` counting the sends tried for ``notifier``."""
    return notifier


def error_field(notifier: str) -> str:
    """Field of ``{p}:attempts:<id>`` keeping the last recoverable error (``reason\\tmessage``)."""
    return f"{notifier}#error"


def dead_field(notifier: str) -> str:
    """Field of ``{p}:attempts:<id>`` set once the pair was dead-lettered (no second record)."""
    return f"{notifier}#dead"


def dead_record(
    *,
    data: str | bytes,
    notifier: str,
    attempts: int,
    error: str,
    reason: str,
    failed_at: datetime,
    source_id: str,
) -> dict[str, str | bytes]:
    """The fields of one dead-letter stream entry."""
    return {
        "data": data,
        "notifier": notifier,
        "attempts": str(attempts),
        "error": error[:MAX_ERROR_CHARS],
        "reason": reason,
        "failed_at": failed_at.isoformat(),
        "source_id": source_id,
    }


def _s(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead-letter entry. ``alert`` is None when ``data`` could not be decoded."""

    id: str
    notifier: str
    attempts: int
    reason: str
    error: str
    failed_at: datetime | None
    source_id: str
    data: str
    alert: Alert | None

    @property
    def alert_id(self) -> str | None:
        return self.alert.id if self.alert else None

    @property
    def rule_id(self) -> str | None:
        return self.alert.rule.id if self.alert else None

    @property
    def title(self) -> str | None:
        return self.alert.item.title if self.alert else None

    @property
    def replayable(self) -> bool:
        return self.alert is not None and bool(self.notifier)

    def summary(self) -> dict[str, Any]:
        """The flat JSON-able view ``dlq list --json`` prints."""
        return {
            "id": self.id,
            "alert_id": self.alert_id,
            "rule_id": self.rule_id,
            "title": self.title,
            "notifier": self.notifier,
            "attempts": self.attempts,
            "reason": self.reason,
            "error": self.error,
            "failed_at": self.failed_at.isoformat() if self.failed_at else None,
            "source_id": self.source_id,
        }

    def detail(self) -> dict[str, Any]:
        """``summary()`` plus the whole alert (its wire dict), or the raw data if undecodable."""
        extra = {"alert": self.alert.to_dict()} if self.alert else {"data": self.data}
        return {**self.summary(), **extra}

    @classmethod
    def from_entry(cls, entry_id: bytes | str, fields: Mapping[Any, Any]) -> DeadLetter:
        f = {_s(k): v for k, v in fields.items()}
        data = _s(f.get("data"))
        alert: Alert | None
        try:
            alert = Alert.from_json(data)
        except (ValueError, KeyError, TypeError, AttributeError):
            alert = None
        try:
            failed_at: datetime | None = datetime.fromisoformat(_s(f.get("failed_at")))
        except ValueError:
            failed_at = None
        try:
            attempts = int(_s(f.get("attempts")) or 0)
        except ValueError:
            attempts = 0
        return cls(
            id=_s(entry_id),
            notifier=_s(f.get("notifier")),
            attempts=attempts,
            reason=_s(f.get("reason")),
            error=_s(f.get("error")),
            failed_at=failed_at,
            source_id=_s(f.get("source_id")),
            data=data,
            alert=alert,
        )


async def dlq_list(redis: aioredis.Redis, keys: Keys, *, count: int = 100) -> list[DeadLetter]:
    """The oldest ``count`` dead letters, oldest first (the order replay uses)."""
    try:
        entries: Any = await redis.xrange(keys.dead, "-", "+", count=count)
    except STORE_ERRORS as e:
        raise StoreError(f"cannot read the dead-letter stream: {e}") from e
    return [DeadLetter.from_entry(i, f) for i, f in entries]


async def dlq_show(redis: aioredis.Redis, keys: Keys, entry_id: str) -> DeadLetter | None:
    """One dead letter with its full alert, or None if there is no such entry."""
    if not _STREAM_ID.fullmatch(entry_id):
        return None
    try:
        entries: Any = await redis.xrange(keys.dead, entry_id, entry_id, count=1)
    except STORE_ERRORS as e:
        raise StoreError(f"cannot read dead letter {entry_id}: {e}") from e
    return DeadLetter.from_entry(*entries[0]) if entries else None


async def _dead_entries(
    redis: aioredis.Redis, keys: Keys, ids: Sequence[str] | None
) -> list[DeadLetter]:
    if ids is not None:
        found = []
        for entry_id in dict.fromkeys(ids):
            item = await dlq_show(redis, keys, entry_id)
            if item is None:
                log.warning("dead letter %s not found", entry_id)
            else:
                found.append(item)
        return found
    out: list[DeadLetter] = []
    start = "-"
    try:
        while True:
            page: Any = await redis.xrange(keys.dead, start, "+", count=_PAGE)
            out.extend(DeadLetter.from_entry(i, f) for i, f in page)
            if len(page) < _PAGE:
                return out
            start = "(" + _s(page[-1][0])
    except STORE_ERRORS as e:
        raise StoreError(f"cannot read the dead-letter stream: {e}") from e


async def dlq_replay(
    redis: aioredis.Redis,
    keys: Keys,
    ids: Sequence[str] | None = None,
    *,
    stream_maxlen: int = 100_000,
) -> int:
    """Send dead letters (``None``: all of them) back to delivery; returns how many.

    Each is re-added to the main stream routed to the failed notifier only, with its attempt
    count, last error and dead marker cleared, then removed from the dead-letter stream, in one
    transaction. Undecodable entries cannot be replayed: they are left in place (drop them).
    """
    replayed = 0
    for item in await _dead_entries(redis, keys, ids):
        if item.alert is None or not item.notifier:
            log.warning("dead letter %s is not replayable (reason %s)", item.id, item.reason)
            continue
        alert = replace(item.alert, notify=(item.notifier,))
        name = item.notifier
        try:
            async with redis.pipeline(transaction=True) as pipe:
                pipe.hdel(
                    keys.attempts(alert.id),
                    attempts_field(name),
                    error_field(name),
                    dead_field(name),
                )
                pipe.srem(keys.delivered(alert.id), name)
                pipe.xadd(
                    keys.alerts, {"data": alert.to_json()}, maxlen=stream_maxlen, approximate=True
                )
                pipe.xdel(keys.dead, item.id)
                await pipe.execute()
        except STORE_ERRORS as e:
            raise StoreError(f"cannot replay dead letter {item.id}: {e}") from e
        replayed += 1
    return replayed


async def dlq_drop(redis: aioredis.Redis, keys: Keys, ids: Sequence[str]) -> int:
    """Delete dead letters for good; returns how many existed."""
    ids = [i for i in ids if _STREAM_ID.fullmatch(i)]
    if not ids:
        return 0
    try:
        return int(await redis.xdel(keys.dead, *ids))
    except STORE_ERRORS as e:
        raise StoreError(f"cannot drop dead letters: {e}") from e


def _one_line(text: str, width: int | None = None) -> str:
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def format_dead_letters(items: Iterable[DeadLetter], *, as_json: bool, full: bool = False) -> str:
    """A table for humans, or one JSON object per line for scripts (``full``: with the alert)."""
    items = list(items)
    if as_json:
        return "\n".join(
            json.dumps(i.detail() if full else i.summary(), ensure_ascii=False) for i in items
        )
    if not items:
        return "no dead letters"
    header = ("ID", "FAILED_AT", "NOTIFIER", "REASON", "ATTEMPTS", "RULE", "TITLE", "ERROR")
    rows = [
        (
            i.id,
            i.failed_at.strftime("%Y-%m-%d %H:%M:%S") if i.failed_at else "-",
            _one_line(i.notifier or "-", 24),
            i.reason or "-",
            str(i.attempts),
            _one_line(i.rule_id or "-", 24),
            _one_line(i.title or "-", 40),
            _one_line(i.error or "-", 60),
        )
        for i in items
    ]
    widths = [max(len(r[c]) for r in (header, *rows)) for c in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
        for r in (header, *rows)
    ]
    return "\n".join(lines)
