"""``feedwatch status``: what every feed, the delivery stream and the instances are doing.

Everything is read from Redis, so it shows the state of every process on that Redis, running
or not: per feed the effective interval (and, for adaptive feeds, why: ``base``, ``rhythm``,
``overflow``, ``max-age``), the last poll and its outcome, the next poll, the error streak,
items seen and new in the last 24 h; the WebSub subscription of each feed that advertises a
hub (its hub, state, lease end, last push, last error; also of feeds leaving the config); the
delivery group's pending entries and lag; the dead letters; the instances whose heartbeat is
alive (with their rules' last reload).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from daemon.config.load import Config
from daemon.durations import format_duration
from daemon.fetch.client import safe_url
from daemon.parse.feedlinks import FeedLinks
from daemon.poll.rhythm import effective
from daemon.poll.state import FeedStore
from daemon.redis.keys import Keys
from daemon.websub.decisions import Subscription
from daemon.websub.store import Refusal, WebSubStore


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


async def gather(redis: aioredis.Redis, config: Config, now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    keys = Keys(config.prefix)
    store = FeedStore(redis, keys)
    hour = int(now // 3600) * 3600
    feeds: list[dict[str, Any]] = []
    for f in config.feeds:
        st = await store.load(f.name)
        counts = await redis.hgetall(keys.new_counts(f.name))
        new_24h = sum(int(v) for k, v in counts.items() if int(_text(k)) > hour - 24 * 3600)
        lo, hi = f.bounds
        interval = effective(st.interval, base=f.interval, lo=lo, hi=hi)
        reason = "fixed" if lo == hi else (st.interval_reason or "base")
        if st.next_after and st.next_after > now:
            next_poll = st.next_after
        elif st.last_poll:
            next_poll = max(now, st.last_poll + interval)
        else:
            next_poll = None
        feeds.append({
            "name": f.name, "interval": f.interval, "min_interval": lo, "max_interval": hi,
            "effective_interval": interval, "interval_reason": reason, "last_poll": st.last_poll,
            "last_ok": st.last_ok, "outcome": st.last_outcome, "error": st.last_error,
            "error_streak": st.error_streak, "next_poll": next_poll,
            "items_seen": st.items_seen, "new_24h": new_24h,
        })  # fmt: skip
    websub = await _websub(WebSubStore(redis, keys), config, now)
    delivery: dict[str, Any] = {"stream_length": await redis.xlen(keys.alerts)}
    try:
        groups = await redis.xinfo_groups(keys.alerts)
    except ResponseError:
        groups = []
    for g in groups:
        g = {_text(k): v for k, v in g.items()}
        if _text(g.get("name")) != keys.group:
            continue
        last = _text(g.get("last-delivered-id", "0-0"))
        # Redis 7 reports the lag; 6.2 does not, so count entries after last-delivered-id.
        lag = g.get("lag")
        if lag is None:
            lag = len(await redis.xrange(keys.alerts, f"({last}", "+", count=10_000) or [])
        delivery.update(consumers=g.get("consumers"), pending=g.get("pending"), lag=lag)
    delivery["dead_letters"] = await redis.xlen(keys.dead)
    instances = []
    async for k in redis.scan_iter(match=keys.heartbeat("*"), count=1000):
        raw = await redis.get(k)
        try:
            beat = json.loads(raw) if raw else {}
        except ValueError:
            beat = {"role": _text(raw)}
        instances.append({"identity": _text(k).rsplit(":", 1)[-1], **beat})
    return {
        "now": now, "feeds": feeds, "websub": websub, "delivery": delivery, "instances": instances,
    }  # fmt: skip


async def _websub(store: WebSubStore, config: Config, now: float) -> dict[str, Any]:
    """Every feed the subscriber looks at (configured ones in config order, then the others),
    with a subscription, a refused hub or links not acted on yet."""
    order = {f.name: i for i, f in enumerate(config.feeds)}
    names = sorted(await store.feeds(), key=lambda n: (order.get(n, len(order)), n))
    rows = []
    for name in names:
        links, refused = await store.links_and_refusal(name)
        row = websub_row(name, name in order, await store.load(name), links, refused, now)
        if row is not None:
            rows.append(row)
    return {
        "enabled": config.http is not None and config.http.public_url is not None,
        "counts": dict(Counter(r["state"] for r in rows)),
        "subscriptions": rows,
    }


def websub_state(sub: Subscription, now: float) -> str:
    """``pending`` (asked, not verified yet), ``verified``, ``renewing`` (a renewal awaits its
    verification), ``expiring`` (past its renewal time: renewals fail), ``expired``, or the
    record's own ``failed``, ``denied``, ``unsubscribing``."""
    if sub.state != "active":
        return sub.state
    if now >= sub.expires_at:
        return "expired"
    if sub.renewing:
        return "renewing"
    return "expiring" if now >= sub.renew_at() else "verified"


def websub_row(
    feed: str,
    configured: bool,
    sub: Subscription | None,
    links: FeedLinks,
    refused: Refusal | None,
    now: float,
) -> dict[str, Any] | None:
    """One feed's line of the WebSub section, or None if there is nothing to show. Without a
    subscription: ``refused`` (the policy forbids its hub) or ``discovered`` (not asked yet)."""
    row: dict[str, Any] = {"feed": feed, "configured": configured}
    if sub is not None:
        return row | {
            "state": websub_state(sub, now), "hub": safe_url(sub.hub),
            "topic": safe_url(sub.topic), "expires_at": sub.expires_at or None,
            "last_push": sub.last_push or None, "requested_at": sub.requested_at or None,
            "retry_at": sub.retry_at or None, "attempts": sub.attempts, "error": sub.error or None,
        }  # fmt: skip
    if refused is not None and configured:
        return row | {"state": "refused", "hub": refused.hub, "error": refused.reason}
    if links.usable and configured:
        return row | {"state": "discovered", "hub": safe_url(links.hubs[0]), "error": None}
    return None


def _ago(now: float, t: float | None) -> str:
    if not t:
        return "never"
    d = now - t
    return f"{format_duration(d)} ago" if d >= 0 else f"in {format_duration(-d)}"


def _interval(f: dict[str, Any]) -> str:
    """The effective interval, and why when it is adaptive: ``4m (rhythm)``."""
    shown = format_duration(f["effective_interval"])
    return shown if f["interval_reason"] == "fixed" else f"{shown} ({f['interval_reason']})"


def format_table(status: dict[str, Any]) -> str:
    now = status["now"]
    head = ("FEED", "INTERVAL", "LAST POLL", "OUTCOME", "NEXT POLL", "ERRORS", "SEEN", "NEW 24H")
    rows = [head] + [
        (
            f["name"], _interval(f), _ago(now, f["last_poll"]),
            f["outcome"] or "-", _ago(now, f["next_poll"]) if f["next_poll"] else "soon",
            str(f["error_streak"]), str(f["items_seen"]), str(f["new_24h"]),
        )
        for f in status["feeds"]
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines += _websub_lines(now, status["websub"])
    d = status["delivery"]
    lines.append("")
    lines.append(
        f"delivery: {d.get('pending', 0)} pending, lag {d.get('lag', 0)}, "
        f"{d.get('consumers', 0)} consumers, {d['dead_letters']} dead letters "
        f"(stream length {d['stream_length']})"
    )
    alive = status["instances"]
    lines.append(f"instances alive: {len(alive)}")
    for i in alive:
        reload = {True: "ok", False: "FAILED", None: "-"}[i.get("rules_reload_ok")]
        lines.append(
            f"  {i['identity']}  role={i.get('role', '?')}  rules={i.get('rules', '?')}"
            f"  last-reload={reload}  up {format_duration(now - i.get('started', now))}"
        )
    return "\n".join(lines)


def _websub_lines(now: float, ws: dict[str, Any]) -> list[str]:
    rows = ws["subscriptions"]
    if not rows:
        return [] if not ws["enabled"] else ["", "websub: no feed advertises a hub"]
    counts = ", ".join(f"{n} {state}" for state, n in sorted(ws["counts"].items()))
    off = "" if ws["enabled"] else " (off: http.public_url is not set)"
    head = ("FEED", "STATE", "HUB", "LEASE ENDS", "LAST PUSH", "NOTE")
    table = [head] + [
        (
            r["feed"] + ("" if r["configured"] else " (removed)"), r["state"], r["hub"],
            _ago(now, r.get("expires_at")) if r.get("expires_at") else "-",
            _ago(now, r.get("last_push")), (r.get("error") or "")[:80],
        )
        for r in rows
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    feeds = f"{len(rows)} feed{'s' if len(rows) > 1 else ''}"
    out = ["", f"websub{off}: {feeds} with a hub: {counts}"]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table]
    return out
