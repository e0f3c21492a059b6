"""Prometheus metrics: what polls and deliveries did, in a registry of our own.

``Metrics`` owns a ``prometheus_client.CollectorRegistry`` (never the global default one, so
tests and several daemons in one process do not collide) and is fed by events:

* ``poll(result)`` — a ``Poller.on_result`` callback: every ``PollResult``;
* ``delivered`` / ``retried`` / ``dead`` / ``first_delivery`` — the Dispatcher's observer
  (``alerts.observer.DeliveryObserver``);
* ``set_stream(...)`` — the delivery stream's depth, which ``refresh_loop`` reads from Redis
  every ``STREAM_EVERY`` seconds;
* ``track(...)`` — gauges read at scrape time (rules loaded, last reload, polls in flight).

Label values are bounded: feed and notifier names are the configured ones (anything else is
counted as ``other`` / ``unconfigured``), rule ids come from the rule files, poll outcomes
and dead-letter reasons from fixed sets (``error:other`` / ``other`` for anything else).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from redis.exceptions import ResponseError

from alerts.wire import Alert
from daemon.redis.errors import STORE_ERRORS
from daemon.redis.keys import Keys

if TYPE_CHECKING:
    from daemon.poll.result import PollResult

logger = logging.getLogger("daemon.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
STREAM_EVERY = 10.0  # seconds between reads of the stream's lag and pending count
LAG_SCAN_CAP = 10_000  # Redis < 7 reports no lag: count at most this many unread entries

FETCH_ERROR_KINDS = (
    "connect", "dns", "timeout", "deadline", "http", "too_large", "redirects", "transport",
    "decode",
)  # fmt: skip
OUTCOMES = frozenset(
    ("ok", "not_modified", "unchanged", "backoff", "leased", "fresh", "pushed", "websub")
    + tuple(f"error:{k}" for k in (*FETCH_ERROR_KINDS, "parse", "store", "internal"))
)
OTHER_ERROR = "error:other"
SUCCESSES = frozenset(("ok", "not_modified", "unchanged"))
REASONS = frozenset(
    ("client", "server", "auth", "rate_limited", "timeout", "transport", "config", "decode",
     "unexpected")
)  # fmt: skip
OTHER_FEED = "other"
UNCONFIGURED = "unconfigured"
NO_NOTIFIER = "none"

FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
PARSE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
DELIVERY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
PUBLICATION_BUCKETS = (
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 3 * 3600.0, 6 * 3600.0,
    12 * 3600.0, 86400.0,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class StreamDepth:
    lag: int  # entries not yet read by the delivery group
    pending: int  # read, not yet acknowledged
    dead_letters: int  # entries in the dead-letter stream


class Metrics:
    """Every feedwatch metric, in ``self.registry``. See the module docstring."""

    def __init__(
        self,
        *,
        feeds: Iterable[str] = (),
        notifiers: Iterable[str] = (),
        version: str = "",
        role: str = "all",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.feeds = frozenset(feeds)
        self.notifiers = frozenset(notifiers)
        self.clock = clock
        self.registry = r = CollectorRegistry(auto_describe=True)
        Info("feedwatch_build", "The running feedwatch.", registry=r).info(
            {"version": version, "role": role}
        )
        self.polls = Counter(
            "feedwatch_polls_total",
            "Polls by outcome: ok, not_modified, unchanged, backoff, leased, fresh, pushed "
            "(a WebSub push), websub (skipped: pushed, polled at the fallback interval), "
            "error:<kind>.",
            ["feed", "outcome"],
            registry=r,
        )
        self.fetch_seconds = Histogram(
            "feedwatch_fetch_duration_seconds",
            "Time to fetch a feed (requests that got an answer, 304 included).",
            buckets=FETCH_BUCKETS,
            registry=r,
        )
        self.parse_seconds = Histogram(
            "feedwatch_parse_duration_seconds",
            "Time to parse a fetched feed body into items.",
            buckets=PARSE_BUCKETS,
            registry=r,
        )
        self.items_seen = Counter(
            "feedwatch_items_seen_total", "Items read from parsed feeds.", ["feed"], registry=r
        )
        self.items_new = Counter(
            "feedwatch_items_new_total",
            "Items not seen before in their feed.",
            ["feed"],
            registry=r,
        )
        self.archive_errors = Counter(
            "feedwatch_archive_errors_total",
            "Polls whose new items could not be written to the item archive (backtest).",
            registry=r,
        )
        self.matches = Counter(
            "feedwatch_matches_total", "Rule matches on alertable items.", ["rule"], registry=r
        )
        self.alerts = Counter(
            "feedwatch_alerts_total",
            "Alerts published to the stream (new, not seen before).",
            ["rule"],
            registry=r,
        )
        self.last_success = Gauge(
            "feedwatch_last_successful_poll_timestamp_seconds",
            "Unix time of the feed's last poll with outcome ok, not_modified or unchanged.",
            ["feed"],
            registry=r,
        )
        self.delivered_total = Counter(
            "feedwatch_alerts_delivered_total",
            "Alerts a notifier accepted.",
            ["notifier"],
            registry=r,
        )
        self.retried_total = Counter(
            "feedwatch_alerts_retried_total",
            "Failed sends that will be retried.",
            ["notifier"],
            registry=r,
        )
        self.dead_total = Counter(
            "feedwatch_alerts_dead_lettered_total",
            "Dead-letter records written, by notifier and reason.",
            ["notifier", "reason"],
            registry=r,
        )
        self.delivery_latency = Histogram(
            "feedwatch_delivery_latency_seconds",
            "From an alert's creation (when its poll matched it) to a notifier accepting it.",
            ["notifier"],
            buckets=DELIVERY_BUCKETS,
            registry=r,
        )
        self.publication_latency = Histogram(
            "feedwatch_publication_to_delivery_seconds",
            "From an item's publication time to its alert's first delivery, per feed.",
            ["feed"],
            buckets=PUBLICATION_BUCKETS,
            registry=r,
        )
        self.stream_lag = Gauge(
            "feedwatch_stream_lag",
            "Alerts in the stream not yet read by the delivery group.",
            registry=r,
        )
        self.stream_pending = Gauge(
            "feedwatch_stream_pending",
            "Alerts read by a delivery worker and not yet acknowledged.",
            registry=r,
        )
        self.dead_letters = Gauge(
            "feedwatch_dead_letters", "Entries in the dead-letter stream.", registry=r
        )
        self.rules_loaded = Gauge(
            "feedwatch_rules_loaded", "Rules in force (poller role).", registry=r
        )
        self.reload_ok = Gauge(
            "feedwatch_rules_last_reload_success",
            "1 if the last rule reload succeeded (or none happened yet), 0 if it failed.",
            registry=r,
        )
        self.in_flight = Gauge("feedwatch_polls_in_flight", "Polls running now.", registry=r)
        self.http_refused = Counter(
            "feedwatch_http_refused_total",
            "Requests or connections the HTTP endpoint refused (daemon.ops.http): connections "
            "(over every limit), evicted (silent, for a new one), busy (over max_connections, "
            "not a health probe), malformed, "
            "too_large, head_timeout, body_timeout, write_timeout.",
            ["reason"],
            registry=r,
        )
        for name in self.notifiers:  # zero series, so rate() works from the first scrape
            self.delivered_total.labels(notifier=name)
            self.retried_total.labels(notifier=name)
        self.reload_ok.set(1)

    # -- labels -----------------------------------------------------------------------------
    def _feed(self, name: str) -> str:
        return name if name in self.feeds else OTHER_FEED

    def _notifier(self, name: str) -> str:
        if not name:
            return NO_NOTIFIER
        return name if name in self.notifiers else UNCONFIGURED

    # -- polls ------------------------------------------------------------------------------
    def poll(self, result: PollResult) -> None:
        """Record one poll (a ``Poller.on_result`` callback)."""
        feed = self._feed(result.feed)
        outcome = result.outcome if result.outcome in OUTCOMES else OTHER_ERROR
        self.polls.labels(feed=feed, outcome=outcome).inc()
        if result.fetch_seconds is not None:
            self.fetch_seconds.observe(result.fetch_seconds)
        if result.parse_seconds is not None:
            self.parse_seconds.observe(result.parse_seconds)
        if result.items:
            self.items_seen.labels(feed=feed).inc(result.items)
        if result.new:
            self.items_new.labels(feed=feed).inc(result.new)
        for rule in result.matched:
            self.matches.labels(rule=rule).inc()
        for rule in result.alerted:
            self.alerts.labels(rule=rule).inc()
        if result.outcome in SUCCESSES:
            self.last_success.labels(feed=feed).set(self.clock())

    # -- delivery (alerts.observer.DeliveryObserver) ----------------------------------------
    def delivered(self, alert: Alert, notifier: str, *, attempt: int, at: datetime) -> None:
        name = self._notifier(notifier)
        self.delivered_total.labels(notifier=name).inc()
        latency = (at - alert.created).total_seconds()
        self.delivery_latency.labels(notifier=name).observe(max(0.0, latency))

    def retried(self, alert: Alert, notifier: str, *, attempt: int, reason: str) -> None:
        self.retried_total.labels(notifier=self._notifier(notifier)).inc()

    def dead(self, notifier: str, *, reason: str) -> None:
        self.dead_total.labels(
            notifier=self._notifier(notifier), reason=reason if reason in REASONS else "other"
        ).inc()

    def first_delivery(self, alert: Alert, *, at: datetime) -> None:
        published = alert.item.published
        if published is None:
            return
        seconds = max(0.0, (at - published).total_seconds())
        self.publication_latency.labels(feed=self._feed(alert.item.feed)).observe(seconds)

    # -- state read elsewhere ---------------------------------------------------------------
    def set_stream(self, depth: StreamDepth) -> None:
        self.stream_lag.set(depth.lag)
        self.stream_pending.set(depth.pending)
        self.dead_letters.set(depth.dead_letters)

    def track(
        self,
        *,
        rules: Callable[[], int] | None = None,
        reload_ok: Callable[[], bool | None] | None = None,
        in_flight: Callable[[], int] | None = None,
    ) -> None:
        """Gauges computed at scrape time from the daemon's live objects."""
        if rules is not None:
            self.rules_loaded.set_function(lambda: float(rules()))
        if reload_ok is not None:
            self.reload_ok.set_function(lambda: 0.0 if reload_ok() is False else 1.0)
        if in_flight is not None:
            self.in_flight.set_function(lambda: float(in_flight()))

    def refused(self, reason: str) -> None:
        """The HTTP endpoint refused a request or connection (``HttpServer.on_refuse``)."""
        self.http_refused.labels(reason).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    async def refresh_loop(
        self, redis: aioredis.Redis, keys: Keys, stop: asyncio.Event, every: float = STREAM_EVERY
    ) -> None:
        """Read the stream's depth every ``every`` seconds until ``stop`` is set."""
        while not stop.is_set():
            try:
                self.set_stream(await stream_depth(redis, keys))
            except STORE_ERRORS + (OSError,) as e:
                logger.debug("stream metrics not refreshed: %s", e)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)


# Redis < 7 has no "lag" in XINFO GROUPS: count the unread entries on the server, capped.
_COUNT_AFTER = """
return #redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def stream_depth(redis: aioredis.Redis, keys: Keys) -> StreamDepth:
    """The delivery group's lag and pending count, and the dead letters. Raises RedisError."""
    try:
        groups = await redis.xinfo_groups(keys.alerts)
    except ResponseError:  # no stream yet
        groups = []
    lag = pending = 0
    for raw in groups:
        group = {_text(k): v for k, v in raw.items()}
        if _text(group.get("name")) != keys.group:
            continue
        pending = int(group.get("pending") or 0)
        if group.get("lag") is not None:
            lag = int(group["lag"])
        else:
            last = _text(group.get("last-delivered-id") or "0-0")
            lag = int(await redis.eval(_COUNT_AFTER, 1, keys.alerts, last, LAG_SCAN_CAP))
    dead = int(await redis.xlen(keys.dead))
    return StreamDepth(lag=lag, pending=pending, dead_letters=dead)
