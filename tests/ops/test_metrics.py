"""Metrics record what polls and deliveries report; values read back from the registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from alerts.base import Notifier
from alerts.dispatch import DeliverySettings, Dispatcher, NotifierRuntime
from alerts.observer import DeliveryObserver
from alerts.testing import FailingNotifier, RecordingNotifier
from alerts.wire import Alert, AlertItem, AlertMatch, AlertRule
from daemon.config.load import FeedConfig, config_from_dict
from daemon.errors import ConfigError
from daemon.fetch.client import Fetcher, FetchSettings
from daemon.match.matcher import Matcher
from daemon.match.rules import load_rules
from daemon.ops.metrics import Metrics, StreamDepth, stream_depth
from daemon.poll.parse_pool import ParsePool
from daemon.poll.pipeline import Pipeline
from daemon.poll.poller import Poller
from daemon.poll.result import PollResult
from daemon.poll.state import FeedStore
from daemon.publish.stream import Publisher
from daemon.redis.keys import Keys
from tests.support.feeds import Entry, rss
from tests.support.httpserver import FeedServer
from tests.support.redis_topologies import aclient

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
KEYS = Keys("mt")


def value(m: Metrics, name: str, **labels: str) -> float:
    """A sample's value, 0.0 when the series does not exist."""
    got = m.registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


def alert(n: int = 1, *, feed: str = "wire", published: datetime | None = NOW) -> Alert:
    return Alert(
        id=f"a{n}",
        rule=AlertRule(id="kursk", title="Kursk", severity="high"),
        item=AlertItem(
            id=f"i{n}", title="Kursk", link=None, excerpt="", published=published, feed=feed
        ),
        matches=(AlertMatch(term="kursk", field="title", start=0, end=5),),
        created=NOW,
        notify=("rec",),
    )


# -- polls ----------------------------------------------------------------------------------


def test_poll_results_are_counted_by_feed_and_outcome() -> None:
    """Outcomes, items, matches and alerts by rule, durations and last success are recorded."""
    m = Metrics(feeds=["a", "b"], clock=lambda: 1234.0)
    m.poll(
        PollResult(
            feed="a", outcome="ok", items=5, new=2, alerts=1, fetch_seconds=0.2,
            parse_seconds=0.01, matched=("kursk", "kursk", "dprk"), alerted=("kursk",),
        )
    )  # fmt: skip
    m.poll(PollResult(feed="a", outcome="not_modified", fetch_seconds=0.1))
    m.poll(PollResult(feed="b", outcome="error:timeout"))
    assert value(m, "feedwatch_polls_total", feed="a", outcome="ok") == 1
    assert value(m, "feedwatch_polls_total", feed="a", outcome="not_modified") == 1
    assert value(m, "feedwatch_polls_total", feed="b", outcome="error:timeout") == 1
    assert value(m, "feedwatch_items_seen_total", feed="a") == 5
    assert value(m, "feedwatch_items_new_total", feed="a") == 2
    assert value(m, "feedwatch_matches_total", rule="kursk") == 2
    assert value(m, "feedwatch_matches_total", rule="dprk") == 1
    assert value(m, "feedwatch_alerts_total", rule="kursk") == 1
    assert value(m, "feedwatch_alerts_total", rule="dprk") == 0
    assert value(m, "feedwatch_fetch_duration_seconds_count") == 2
    assert value(m, "feedwatch_fetch_duration_seconds_sum") == pytest.approx(0.3)
    assert value(m, "feedwatch_parse_duration_seconds_count") == 1
    assert value(m, "feedwatch_last_successful_poll_timestamp_seconds", feed="a") == 1234.0
    assert m.registry.get_sample_value(
        "feedwatch_last_successful_poll_timestamp_seconds", {"feed": "b"}
    ) is None  # fmt: skip


def test_label_values_are_bounded() -> None:
    """An unknown outcome becomes error:other and an unconfigured feed 'other'."""
    m = Metrics(feeds=["a"])
    m.poll(PollResult(feed="a", outcome="error:weird-new-kind"))
    m.poll(PollResult(feed="zzz", outcome="ok"))
    assert value(m, "feedwatch_polls_total", feed="a", outcome="error:other") == 1
    assert value(m, "feedwatch_polls_total", feed="other", outcome="ok") == 1


def test_metrics_use_their_own_registry() -> None:
    """Two Metrics objects in one process neither collide nor share values."""
    one, two = Metrics(feeds=["a"]), Metrics(feeds=["a"])
    one.poll(PollResult(feed="a", outcome="ok"))
    assert value(one, "feedwatch_polls_total", feed="a", outcome="ok") == 1
    assert value(two, "feedwatch_polls_total", feed="a", outcome="ok") == 0
    assert b'feedwatch_polls_total{feed="a",outcome="ok"} 1.0' in one.render()


def test_gauges_read_at_scrape_time() -> None:
    """Rules loaded, last reload and polls in flight are read from live callables."""

    class Live:
        rules: int = 3
        ok: bool | None = None
        flight: int = 0

    m = Metrics()
    live = Live()
    m.track(rules=lambda: live.rules, reload_ok=lambda: live.ok, in_flight=lambda: live.flight)
    assert value(m, "feedwatch_rules_loaded") == 3
    assert value(m, "feedwatch_rules_last_reload_success") == 1
    live.rules, live.ok, live.flight = 4, False, 2
    assert value(m, "feedwatch_rules_loaded") == 4
    assert value(m, "feedwatch_rules_last_reload_success") == 0
    assert value(m, "feedwatch_polls_in_flight") == 2
    m.set_stream(StreamDepth(lag=7, pending=2, dead_letters=1))
    assert value(m, "feedwatch_stream_lag") == 7
    assert value(m, "feedwatch_stream_pending") == 2
    assert value(m, "feedwatch_dead_letters") == 1


# -- delivery events ------------------------------------------------------------------------


def test_delivery_events() -> None:
    """Delivered, retried and dead-lettered counts by notifier; latencies observed."""
    m = Metrics(feeds=["wire"], notifiers=["rec", "mail"])
    assert value(m, "feedwatch_alerts_delivered_total", notifier="mail") == 0  # pre-created
    a = alert()
    m.retried(a, "rec", attempt=1, reason="server")
    m.delivered(a, "rec", attempt=2, at=NOW + timedelta(seconds=3))
    m.dead("mail", reason="client")
    m.dead("nosuch", reason="config")
    m.dead("", reason="decode")
    m.dead("mail", reason="something-a-plugin-made-up")
    assert value(m, "feedwatch_alerts_retried_total", notifier="rec") == 1
    assert value(m, "feedwatch_alerts_delivered_total", notifier="rec") == 1
    assert value(m, "feedwatch_delivery_latency_seconds_sum", notifier="rec") == 3.0
    assert value(m, "feedwatch_delivery_latency_seconds_bucket", notifier="rec", le="2.5") == 0
    assert value(m, "feedwatch_delivery_latency_seconds_bucket", notifier="rec", le="5.0") == 1
    dead = "feedwatch_alerts_dead_lettered_total"
    assert value(m, dead, notifier="mail", reason="client") == 1
    assert value(m, dead, notifier="unconfigured", reason="config") == 1
    assert value(m, dead, notifier="none", reason="decode") == 1
    assert value(m, dead, notifier="mail", reason="other") == 1


def test_publication_to_delivery_histogram() -> None:
    """One observation per alert, per feed, in buckets from 1 s to 1 d; no date, no sample."""
    m = Metrics(feeds=["wire"])
    m.first_delivery(alert(), at=NOW + timedelta(seconds=90))
    m.first_delivery(alert(2, published=None), at=NOW)
    m.first_delivery(alert(3, published=NOW - timedelta(days=2)), at=NOW)
    name = "feedwatch_publication_to_delivery_seconds"
    assert value(m, f"{name}_count", feed="wire") == 2
    assert value(m, f"{name}_bucket", feed="wire", le="60.0") == 0
    assert value(m, f"{name}_bucket", feed="wire", le="120.0") == 1
    assert value(m, f"{name}_bucket", feed="wire", le="86400.0") == 1
    assert value(m, f"{name}_bucket", feed="wire", le="+Inf") == 2
    assert value(m, f"{name}_bucket", feed="wire", le="1.0") == 0


@pytest.fixture
async def r(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aclient(redis_url)
    yield client
    await client.aclose()


async def _no_sleep(_delay: float) -> None:
    return None


def _dispatcher(r: aioredis.Redis, observer: DeliveryObserver, *notifiers: Notifier) -> Dispatcher:
    settings = DeliverySettings(max_attempts=3, backoff_initial=0.0, backoff_max=0.0)
    runtimes = {n.name: NotifierRuntime(n.name, n) for n in notifiers}
    return Dispatcher(
        r, KEYS, runtimes, settings, sleep=_no_sleep, clock=lambda: NOW + timedelta(seconds=30),
        observer=observer,
    )  # fmt: skip


async def test_dispatcher_reports_to_metrics(r: aioredis.Redis) -> None:
    """A real Dispatcher on real Redis: deliveries, retries and dead letters reach Metrics."""
    m = Metrics(feeds=["wire"], notifiers=["rec", "flaky", "broken"])
    rec = RecordingNotifier("rec")
    flaky = FailingNotifier("flaky", FailingNotifier.Options(fail_times=1))
    broken = FailingNotifier("broken", FailingNotifier.Options(recoverable=False, reason="client"))
    d = _dispatcher(r, m, rec, flaky, broken)
    a = replace(alert(), notify=("rec", "flaky", "broken"))
    out = await d.deliver("1-0", a)
    assert set(out.delivered) == {"rec", "flaky"} and out.dead == ("broken",)
    assert value(m, "feedwatch_alerts_delivered_total", notifier="rec") == 1
    assert value(m, "feedwatch_alerts_delivered_total", notifier="flaky") == 1
    assert value(m, "feedwatch_alerts_retried_total", notifier="flaky") == 1
    assert value(m, "feedwatch_alerts_dead_lettered_total", notifier="broken", reason="client") == 1
    assert value(m, "feedwatch_delivery_latency_seconds_sum", notifier="rec") == 30.0
    name = "feedwatch_publication_to_delivery_seconds_count"
    assert value(m, name, feed="wire") == 1  # once per alert, not per notifier
    again = await d.deliver("1-0", a)  # redelivered entry: nothing sent, nothing counted
    assert set(again.skipped) == {"rec", "flaky", "broken"}
    assert value(m, name, feed="wire") == 1
    assert value(m, "feedwatch_alerts_delivered_total", notifier="rec") == 1


class _Exploding:
    def delivered(self, *a: object, **k: object) -> None:
        raise RuntimeError("boom")

    retried = dead = first_delivery = delivered


async def test_a_failing_observer_does_not_break_delivery(
    r: aioredis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """An observer that raises is logged; the alert is still delivered and recorded."""
    rec = RecordingNotifier("rec")
    out = await _dispatcher(r, _Exploding(), rec).deliver("1-0", alert())
    assert out.delivered == ("rec",) and len(rec.sent) == 1
    assert await r.sismember(KEYS.delivered("a1"), "rec")
    assert "delivery observer failed" in caplog.text


async def test_stream_depth_reads_lag_pending_and_dead_letters(r: aioredis.Redis) -> None:
    """Lag counts unread entries, pending the read-but-unacked ones (Redis 6.2 and 7)."""
    assert await stream_depth(r, KEYS) == StreamDepth(0, 0, 0)  # no stream yet
    await r.xgroup_create(KEYS.alerts, KEYS.group, id="0", mkstream=True)
    for i in range(5):
        await r.xadd(KEYS.alerts, {"data": str(i)})
    await r.xreadgroup(KEYS.group, "c1", {KEYS.alerts: ">"}, count=2)
    await r.xadd(KEYS.dead, {"data": "x"})
    assert await stream_depth(r, KEYS) == StreamDepth(lag=3, pending=2, dead_letters=1)


# -- the poller feeding Metrics -------------------------------------------------------------


async def test_poller_results_carry_durations_and_rules(
    redis_url: str, feed_server: FeedServer, tmp_path: Path
) -> None:
    """A real poll reports fetch and parse durations and per-rule matches and alerts."""
    (tmp_path / "r.yaml").write_text(
        "rules:\n  - {id: kursk, title: Kursk, query: Kursk}\n"
        "  - {id: sudzha, title: Sudzha, query: Sudzha}\n"
    )
    matcher = Matcher(load_rules([tmp_path / "r.yaml"]))
    feed_server.set(
        "/a.xml",
        rss([Entry("g1", "Kursk: Sudzha", "x", NOW), Entry("g2", "Kursk again", "y", NOW)]),
    )
    m = Metrics(feeds=["a"])
    r = aclient(redis_url)
    try:
        async with Fetcher(FetchSettings(deadline=5)) as fetcher:
            pipeline = Pipeline(
                fetcher=fetcher, store=FeedStore(r, KEYS), publisher=Publisher(r, KEYS),
                matcher=lambda: matcher, parser=ParsePool(0), default_notify=("console",),
                max_backoff=3600.0, clock=lambda: NOW,
            )  # fmt: skip
            feeds = {"a": FeedConfig("a", feed_server.url("/a.xml"), 60.0, backfill=None)}
            poller = Poller(pipeline, feeds=feeds)
            poller.on_result.append(m.poll)
            first = await poller.poll(poller.feeds["a"])
            second = await poller.poll(poller.feeds["a"])
    finally:
        await r.aclose()
    assert first.outcome == "ok" and sorted(first.alerted) == ["kursk", "kursk", "sudzha"]
    assert first.fetch_seconds is not None and first.parse_seconds is not None
    assert second.outcome == "unchanged" and second.parse_seconds is None
    assert value(m, "feedwatch_matches_total", rule="kursk") == 2
    assert value(m, "feedwatch_alerts_total", rule="sudzha") == 1
    assert value(m, "feedwatch_polls_total", feed="a", outcome="unchanged") == 1
    assert value(m, "feedwatch_fetch_duration_seconds_count") == 2
    assert value(m, "feedwatch_parse_duration_seconds_count") == 1


# -- config ---------------------------------------------------------------------------------


def test_http_section() -> None:
    """`http: {listen: HOST:PORT}` is parsed (port 0 allowed); absent means off."""
    base = Path("/tmp")
    assert config_from_dict({}, base_dir=base).http is None
    c = config_from_dict({"http": {"listen": "127.0.0.1:0", "public_url": None}}, base_dir=base)
    assert c.http is not None and (c.http.host, c.http.port) == ("127.0.0.1", 0)
    v6 = config_from_dict({"http": {"listen": "[::1]:9464"}}, base_dir=base).http
    assert v6 is not None and (v6.host, v6.port) == ("::1", 9464)
    for bad, text in [
        ({"listen": "9464"}, "expected HOST:PORT"),
        ({"listen": "h:99999"}, "expected HOST:PORT"),
        ({}, "required key missing"),
        ({"listen": "h:1", "public_url": "ftp://x"}, "http:// or https://"),
        ({"listen": "h:1", "port": 1}, "unknown key 'port'"),
    ]:
        with pytest.raises(ConfigError, match=text):
            config_from_dict({"http": bad}, base_dir=base)
