"""Dispatcher: dedup, retries with backoff, dead letters, severity filters — on real Redis."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import redis.asyncio as aioredis

from alerts.base import Notifier
from alerts.dispatch import NotifierRuntime
from alerts.dlq import dlq_list
from alerts.testing import FailingNotifier, RecordingNotifier
from alerts.wire import Alert, RuleHit
from daemon.redis.shielded import committed
from tests.delivery.helpers import KEYS, Sleeps, dispatcher, make_alert, runtimes, settings


async def delivered_set(r: aioredis.Redis, alert_id: str) -> set[str]:
    return {m.decode() for m in await r.smembers(KEYS.delivered(alert_id))}


async def test_success_records_delivered_marker(r: aioredis.Redis) -> None:
    """A successful send is recorded in the delivered set (with a TTL) and reported."""
    rec = RecordingNotifier("rec")
    d = dispatcher(r, runtimes(rec))
    out = await d.deliver(b"1-0", make_alert(1))
    assert out.delivered == ("rec",) and out.dead == ()
    assert [a.id for a in rec.sent] == ["alert-1"]
    assert await delivered_set(r, "alert-1") == {"rec"}
    assert 0 < await r.ttl(KEYS.delivered("alert-1")) <= 7 * 86400
    assert await r.hget(KEYS.attempts("alert-1"), "rec") == b"1"


async def test_recoverable_failure_is_retried_with_backoff(r: aioredis.Redis) -> None:
    """Two recoverable failures, then success: three calls, two backoff sleeps, delivered."""
    flaky = FailingNotifier("flaky", FailingNotifier.Options(fail_times=2))
    sleeps = Sleeps()
    d = dispatcher(r, runtimes(flaky), settings(backoff_initial=1, backoff_max=100), sleeps)
    out = await d.deliver("1-0", make_alert(1, ["flaky"]))
    assert out.delivered == ("flaky",)
    assert flaky.calls == 3 and len(flaky.sent) == 1
    assert sleeps.delays == [1.0, 1.5]  # rand=0.5: [1,1] then middle of [1,2]
    assert await r.hget(KEYS.attempts("alert-1"), "flaky") == b"3"
    assert await r.xlen(KEYS.dead) == 0


async def test_permanent_error_is_dead_lettered_at_once(r: aioredis.Redis) -> None:
    """A permanent NotifyError goes to the dead stream after one attempt, with the details."""
    bad = FailingNotifier("bad", FailingNotifier.Options(recoverable=False, reason="client"))
    sleeps = Sleeps()
    d = dispatcher(r, runtimes(bad), sleep=sleeps)
    out = await d.deliver("5-1", make_alert(1, ["bad"]))
    assert out.dead == ("bad",) and out.delivered == ()
    assert bad.calls == 1 and sleeps.delays == []
    [dl] = await dlq_list(r, KEYS)
    assert (dl.notifier, dl.attempts, dl.reason, dl.source_id) == ("bad", 1, "client", "5-1")
    assert dl.error == "simulated failure 1"
    assert dl.alert == make_alert(1, ["bad"])
    assert await delivered_set(r, "alert-1") == set()


async def test_attempts_exhausted_is_dead_lettered(r: aioredis.Redis) -> None:
    """A notifier that keeps failing recoverably is dead-lettered after max_attempts."""
    down = FailingNotifier("down")
    d = dispatcher(r, runtimes(down), settings(max_attempts=3))
    out = await d.deliver("1-0", make_alert(1, ["down"]))
    assert out.dead == ("down",)
    assert down.calls == 3
    [dl] = await dlq_list(r, KEYS)
    assert (dl.attempts, dl.reason) == (3, "server")
    assert dl.error == "gave up after 3 attempt(s): simulated failure 3"


async def test_per_notifier_max_attempts_overrides_the_default(r: aioredis.Redis) -> None:
    """NotifierRuntime.max_attempts wins over DeliverySettings.max_attempts."""
    down = FailingNotifier("down")
    rts = {"down": NotifierRuntime("down", down, max_attempts=2)}
    out = await dispatcher(r, rts, settings(max_attempts=9)).deliver("1-0", make_alert(1, ["down"]))
    assert out.dead == ("down",) and down.calls == 2


async def test_one_failing_notifier_does_not_repeat_the_other(r: aioredis.Redis) -> None:
    """With one good and one broken notifier, a redelivery sends to neither again."""
    rec = RecordingNotifier("rec")
    bad = FailingNotifier("bad", FailingNotifier.Options(recoverable=False, reason="auth"))
    d = dispatcher(r, runtimes(rec, bad))
    alert = make_alert(1, ["rec", "bad"])
    first = await d.deliver("1-0", alert)
    assert (first.delivered, first.dead) == (("rec",), ("bad",))
    again = await d.deliver("1-0", alert)  # the entry was redelivered (crash before XACK)
    assert again.skipped == ("rec", "bad") and again.delivered == again.dead == ()
    assert len(rec.sent) == 1 and bad.calls == 1
    assert await r.xlen(KEYS.dead) == 1


async def test_min_severity_filters_notifiers(r: aioredis.Redis) -> None:
    """An alert below a notifier's min_severity is not sent to it (and not dead-lettered)."""
    pager = RecordingNotifier("pager")
    log = RecordingNotifier("log")
    rts = {
        "pager": NotifierRuntime("pager", pager, min_severity="critical"),
        "log": NotifierRuntime("log", log),
    }
    out = await dispatcher(r, rts).deliver("1-0", make_alert(1, ["pager", "log"], "high"))
    assert out.filtered == ("pager",) and out.delivered == ("log",)
    assert pager.sent == [] and len(log.sent) == 1
    out = await dispatcher(r, rts).deliver("2-0", make_alert(2, ["pager"], "critical"))
    assert out.delivered == ("pager",)
    assert await r.xlen(KEYS.dead) == 0


async def test_unknown_routed_notifier_is_dead_lettered(r: aioredis.Redis) -> None:
    """A route naming no configured notifier becomes a 'config' dead letter, not a silent drop."""
    rec = RecordingNotifier("rec")
    out = await dispatcher(r, runtimes(rec)).deliver("1-0", make_alert(1, ["rec", "ghost"]))
    assert out.delivered == ("rec",) and out.dead == ("ghost",)
    [dl] = await dlq_list(r, KEYS)
    assert (dl.notifier, dl.reason, dl.attempts) == ("ghost", "config", 0)
    assert "ghost" in dl.error


async def test_attempt_count_survives_a_crash(r: aioredis.Redis) -> None:
    """Attempts made before a crash count: with 2 of 3 used, one more send is all we try."""
    await r.hset(KEYS.attempts("alert-1"), mapping={"down": 2, "down#error": "timeout\tslow"})
    down = FailingNotifier("down")
    out = await dispatcher(r, runtimes(down), settings(max_attempts=3)).deliver(
        "1-0", make_alert(1, ["down"])
    )
    assert out.dead == ("down",) and down.calls == 1
    [dl] = await dlq_list(r, KEYS)
    assert dl.attempts == 3


async def test_exhausted_before_crash_dead_letters_without_sending(r: aioredis.Redis) -> None:
    """If a crash hit after the last attempt, redelivery dead-letters with the stored error."""
    await r.hset(KEYS.attempts("alert-1"), mapping={"down": 3, "down#error": "timeout\tslow"})
    down = FailingNotifier("down")
    out = await dispatcher(r, runtimes(down), settings(max_attempts=3)).deliver(
        "1-0", make_alert(1, ["down"])
    )
    assert out.dead == ("down",) and down.calls == 0
    [dl] = await dlq_list(r, KEYS)
    assert (dl.reason, dl.error) == ("timeout", "gave up after 3 attempt(s): slow")


class Hanging(Notifier):
    """Never answers."""

    async def send(self, alert: Alert) -> None:
        await asyncio.Event().wait()


class Exploding(Notifier):
    """Raises a non-NotifyError exception."""

    async def send(self, alert: Alert) -> None:
        raise RuntimeError("boom")


async def test_send_timeout_is_a_recoverable_timeout(r: aioredis.Redis) -> None:
    """A send exceeding send_timeout counts as a 'timeout' failure and is retried."""
    hang = Hanging("hang", Hanging.Options(), http=None)  # type: ignore[arg-type]
    s = settings(send_timeout=0.01, max_attempts=2)
    out = await dispatcher(r, runtimes(hang), s).deliver("1-0", make_alert(1, ["hang"]))
    assert out.dead == ("hang",)
    [dl] = await dlq_list(r, KEYS)
    assert (dl.reason, dl.attempts) == ("timeout", 2)


async def test_unexpected_exception_is_recoverable_unexpected(r: aioredis.Redis) -> None:
    """A plugin raising RuntimeError is retried and dead-lettered with reason 'unexpected'."""
    boom = Exploding("boom", Exploding.Options(), http=None)  # type: ignore[arg-type]
    out = await dispatcher(r, runtimes(boom), settings(max_attempts=2)).deliver(
        "1-0", make_alert(1, ["boom"])
    )
    assert out.dead == ("boom",)
    [dl] = await dlq_list(r, KEYS)
    assert dl.reason == "unexpected" and "RuntimeError: boom" in dl.error


async def test_retry_after_is_honoured(r: aioredis.Redis) -> None:
    """A NotifyError's retry_after becomes the backoff delay (below the maximum)."""
    limited = FailingNotifier(
        "limited", FailingNotifier.Options(fail_times=1, reason="rate_limited", retry_after=7)
    )
    sleeps = Sleeps()
    d = dispatcher(r, runtimes(limited), settings(backoff_initial=1, backoff_max=60), sleeps)
    out = await d.deliver("1-0", make_alert(1, ["limited"]))
    assert out.delivered == ("limited",) and sleeps.delays == [7]


async def test_committed_write_finishes_when_the_caller_is_cancelled(r: aioredis.Redis) -> None:
    """A shielded final write still lands although its caller is cancelled mid-way."""
    started = asyncio.Event()
    release = asyncio.Event()

    async def write() -> None:
        started.set()
        await release.wait()
        await r.set("t:final", "1")

    caller = asyncio.create_task(committed(write))
    await started.wait()
    caller.cancel()
    await asyncio.sleep(0)
    release.set()
    try:
        await caller
    except asyncio.CancelledError:
        pass
    assert caller.cancelled()
    assert await r.get("t:final") == b"1"


async def test_one_message_of_several_rules_reaches_each_notifier_once(
    r: aioredis.Redis,
) -> None:
    """A message for three rules: each notifier is sent it once, naming only the rules routed to
    it, and ``min_severity`` judges the highest of those rules."""
    alert = make_alert(1, ["slack", "mail", "pager"])
    hits = tuple(
        RuleHit(id=i, title=i, severity=s, notify=n, kind="new", alert_id=f"a-{i}")
        for i, s, n in (
            ("dprk", "critical", ("slack",)),
            ("kursk", "high", ("slack", "mail", "pager")),
            ("aid", "medium", ("mail", "pager")),
        )
    )
    msg = Alert.from_json(replace(alert, rules=hits).to_json())
    slack, mail, pager = (RecordingNotifier(n) for n in ("slack", "mail", "pager"))
    d = dispatcher(
        r,
        {
            **runtimes(slack, mail),
            "pager": NotifierRuntime("pager", pager, min_severity="critical"),
        },
    )
    out = await d.deliver("1-0", msg)
    assert sorted(out.delivered) == ["mail", "slack"] and out.filtered == ("pager",)
    [to_slack], [to_mail] = slack.sent, mail.sent
    assert [h.id for h in to_slack.rules] == ["dprk", "kursk"] and to_slack.rule.id == "dprk"
    assert [h.id for h in to_mail.rules] == ["kursk", "aid"] and to_mail.rule.id == "kursk"
    assert pager.sent == []
    assert await delivered_set(r, "alert-1") == {"slack", "mail"}
