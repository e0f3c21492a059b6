"""Digest delivery: buffered in Redis, one mail per window, marked only after the SMTP accept."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from aiosmtpd.controller import Controller

from alerts.consumer import Consumer
from alerts.digest import supports_digest
from alerts.digest_flush import DigestFlusher
from alerts.dispatch import Dispatcher, NotifierRuntime
from alerts.dlq import dlq_list
from alerts.email import EmailNotifier
from alerts.slack import SlackNotifier
from alerts.testing import RecordingNotifier
from alerts.webhook import WebhookNotifier
from alerts.wire import Alert
from daemon.config.load import ConfigError, load_config
from tests.delivery.helpers import KEYS, NOW, Sleeps, make_alert, publish, running, settings
from tests.support.redis_topologies import client

WINDOW = 900.0  # digest: 15m
MAIL_DATE = datetime(2024, 8, 13, 10, 0, tzinfo=NOW.tzinfo)


class Clock:
    """An injected clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass
class Handler:
    """aiosmtpd handler: stores mails; can refuse DATA, hold it, or run a check before it."""

    envelopes: list[Any] = field(default_factory=list)
    data_reply: str | None = None
    before_accept: Callable[[], None] | None = None
    started: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.started.set()
        if self.gate is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 10)
        if self.data_reply:
            return self.data_reply
        if self.before_accept is not None:
            self.before_accept()
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def message(self, i: int = 0) -> EmailMessage:
        msg = email.message_from_bytes(self.envelopes[i].content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def part(msg: EmailMessage, subtype: str) -> str:
    p = msg.get_body((subtype,))
    assert p is not None
    return str(p.get_content())


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Handler]]:
    """A plain SMTP server on 127.0.0.1."""
    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, handler
    controller.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client


def mailer(port: int, http: httpx.AsyncClient) -> EmailNotifier:
    opts = EmailNotifier.Options(
        host="127.0.0.1",
        port=port,
        security="none",
        from_addr="feedwatch@alerts.example.org",
        to=["desk@example.org"],
        timeout=5,
    )
    return EmailNotifier("desk", opts, http=http, now=lambda: MAIL_DATE)


def digest_dispatcher(
    r: aioredis.Redis, notifier: Any, clock: Clock, sleep: Sleeps | None = None, **policy: Any
) -> Dispatcher:
    rts = {"desk": NotifierRuntime("desk", notifier, digest=WINDOW, **policy)}
    return Dispatcher(
        r, KEYS, rts, settings(), sleep=sleep or Sleeps(), rand=lambda: 0.5, clock=clock
    )


def alerts(count: int = 3) -> list[Alert]:
    """Alerts routed to "desk" whose titles need HTML escaping."""
    out = []
    for n in range(1, count + 1):
        a = make_alert(n, ["desk"])
        out.append(replace(a, item=replace(a.item, title=f"Sudzha <b>{n}</b> & Kursk")))
    return out


async def buffer(d: Dispatcher, items: Sequence[Alert]) -> None:
    for i, a in enumerate(items, 1):
        out = await d.deliver(f"{i}-0", a)
        assert out.buffered == ("desk",) and out.delivered == ()


async def marked(r: aioredis.Redis, items: Sequence[Alert]) -> list[bool]:
    return [bool(await r.sismember(KEYS.delivered(a.id), "desk")) for a in items]


def assert_digest_of(msg: EmailMessage, items: Sequence[Alert]) -> None:
    assert msg["Subject"].strip() == f"[feedwatch] {len(items)} alerts, highest [HIGH]"
    plain, html = part(msg, "plain"), part(msg, "html")
    for n in range(1, len(items) + 1):
        assert f"Sudzha <b>{n}</b> & Kursk" in plain
        assert f"Sudzha &lt;b&gt;{n}&lt;/b&gt; &amp; Kursk" in html
    assert "<b>" not in html


# -- the window, acceptance and markers ---------------------------------------------------------


async def test_one_mail_after_the_window_marked_only_after_acceptance(
    r: aioredis.Redis, redis_url: str, smtp: tuple[Controller, Handler], http: httpx.AsyncClient
) -> None:
    """3 alerts wait out the window, leave as one mail, and are marked only once it is accepted."""
    controller, handler = smtp
    clock = Clock()
    items = alerts()
    d = digest_dispatcher(r, mailer(controller.port, http), clock)
    await buffer(d, items)
    assert await r.hlen(KEYS.digest("desk")) == 3
    flusher = DigestFlusher(d)

    [early] = await flusher.flush_due(clock.advance(WINDOW - 1))
    assert early.outcome == "waiting" and early.due == NOW + timedelta(seconds=WINDOW)
    assert handler.envelopes == [] and await marked(r, items) == [False] * 3

    seen_at_accept: list[list[int]] = []
    sync = client(redis_url)
    handler.before_accept = lambda: seen_at_accept.append(
        [int(sync.sismember(KEYS.delivered(a.id), "desk")) for a in items]
    )
    [done] = await flusher.flush_due(clock.advance(1))
    sync.close()
    assert (done.outcome, done.alerts, done.attempts) == ("sent", 3, 1)
    assert seen_at_accept == [[0, 0, 0]]
    assert len(handler.envelopes) == 1
    assert_digest_of(handler.message(), items)
    assert await marked(r, items) == [True] * 3
    assert await r.exists(KEYS.digest("desk"), KEYS.digest_sending("desk")) == 0
    [after] = await flusher.flush_due(clock.advance(WINDOW))
    assert after.outcome == "empty" and len(handler.envelopes) == 1


async def test_smtp_down_keeps_the_buffer_and_retries_later(
    r: aioredis.Redis, http: httpx.AsyncClient
) -> None:
    """Connection refused: nothing marked or dead; after the backoff, a live server gets it."""
    port = free_port()
    clock = Clock()
    items = alerts()
    d = digest_dispatcher(r, mailer(port, http), clock)
    await buffer(d, items)
    flusher = DigestFlusher(d)
    [failed] = await flusher.flush_due(clock.advance(WINDOW))
    assert (failed.outcome, failed.alerts, failed.attempts) == ("retry", 3, 1)
    assert failed.error is not None and failed.error.reason == "transport"
    assert failed.due is not None and failed.due > clock.now
    assert await marked(r, items) == [False] * 3
    assert await d.digests.pending("desk") == 3 and await r.xlen(KEYS.dead) == 0
    [held] = await flusher.flush_due()  # backoff not over yet
    assert held.outcome == "waiting"

    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        [sent] = await flusher.flush_due(clock.advance(1))
    finally:
        controller.stop()
    assert (sent.outcome, sent.attempts) == ("sent", 2)
    assert len(handler.envelopes) == 1
    assert_digest_of(handler.message(), items)
    assert await marked(r, items) == [True] * 3


async def test_permanent_failure_dead_letters_every_alert(
    r: aioredis.Redis, smtp: tuple[Controller, Handler], http: httpx.AsyncClient
) -> None:
    """A 554 reply dead-letters each of the 3 alerts once; a redelivery then skips them."""
    controller, handler = smtp
    handler.data_reply = "554 5.6.0 Message rejected"
    clock = Clock()
    items = alerts()
    d = digest_dispatcher(r, mailer(controller.port, http), clock)
    await buffer(d, items)
    [result] = await DigestFlusher(d).flush_due(clock.advance(WINDOW))
    assert (result.outcome, result.alerts) == ("dead", 3)
    dead = await dlq_list(r, KEYS)
    assert sorted(dl.alert_id or "" for dl in dead) == [a.id for a in items]
    assert {(dl.notifier, dl.reason, dl.attempts) for dl in dead} == {("desk", "client", 1)}
    assert sorted(dl.source_id for dl in dead) == ["1-0", "2-0", "3-0"]
    assert all("554" in dl.error for dl in dead)
    assert await marked(r, items) == [False] * 3
    assert await d.digests.pending("desk") == 0
    again = await d.deliver("1-0", items[0])
    assert again.skipped == ("desk",) and await d.digests.pending("desk") == 0


async def test_exhausted_attempts_dead_letter_across_flusher_objects(
    r: aioredis.Redis, http: httpx.AsyncClient
) -> None:
    """With max_attempts 2, the second failure (by a new flusher) dead-letters all alerts."""
    clock = Clock()
    items = alerts()
    d = digest_dispatcher(r, mailer(free_port(), http), clock, max_attempts=2)
    await buffer(d, items)
    [first] = await DigestFlusher(d).flush_due(clock.advance(WINDOW))
    assert first.outcome == "retry"
    [second] = await DigestFlusher(d).flush_due(clock.advance(3600))
    assert (second.outcome, second.attempts) == ("dead", 2)
    dead = await dlq_list(r, KEYS)
    assert len(dead) == 3
    assert all(dl.error.startswith("gave up after 2 attempt(s):") for dl in dead)
    assert {dl.reason for dl in dead} == {"transport"}


# -- crashes, redelivery, concurrency -----------------------------------------------------------


async def test_buffer_survives_a_crash_and_is_sent_once(
    r: aioredis.Redis, smtp: tuple[Controller, Handler], http: httpx.AsyncClient
) -> None:
    """Alerts buffered by one process are sent, once, by new Dispatcher/flusher objects."""
    controller, handler = smtp
    clock = Clock()
    items = alerts()
    await buffer(digest_dispatcher(r, mailer(controller.port, http), clock), items)
    # the process dies: every object is gone, only Redis remains
    d2 = digest_dispatcher(r, mailer(controller.port, http), clock)
    [result] = await DigestFlusher(d2).flush_due(clock.advance(WINDOW))
    assert result.outcome == "sent"
    d3 = digest_dispatcher(r, mailer(controller.port, http), clock)
    assert (await DigestFlusher(d3).flush_due(clock.advance(WINDOW)))[0].outcome == "empty"
    assert len(handler.envelopes) == 1
    assert_digest_of(handler.message(), items)


class HeldDigest(RecordingNotifier):
    """Digest-capable test notifier whose send_digest waits for ``release``."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.digests: list[list[str]] = []
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def send_digest(self, alerts: Sequence[Alert]) -> None:
        self.entered.set()
        await self.release.wait()
        self.digests.append([a.id for a in alerts])


async def test_flusher_dying_mid_send_leaves_the_batch_to_the_next(r: aioredis.Redis) -> None:
    """A batch whose send was interrupted is not marked; a dead owner's lock blocks until it
    expires; then the next flusher resumes and sends it once."""
    clock = Clock()
    items = alerts()
    held = HeldDigest("desk")
    d = digest_dispatcher(r, held, clock)
    await buffer(d, items)
    task = asyncio.create_task(DigestFlusher(d, token="a").flush_due(clock.advance(WINDOW)))
    await asyncio.wait_for(held.entered.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await r.hlen(KEYS.digest_sending("desk")) == 3
    assert await marked(r, items) == [False] * 3
    await r.set(KEYS.digest_lock("desk"), "dead-owner", px=60_000)  # a crash leaves the lock
    fresh = HeldDigest("desk")
    fresh.release.set()
    flusher = DigestFlusher(digest_dispatcher(r, fresh, clock), token="b")
    assert (await flusher.flush_due())[0].outcome == "busy"
    await r.delete(KEYS.digest_lock("desk"))  # the lease ran out
    [result] = await flusher.flush_due()
    assert result.outcome == "sent" and result.attempts == 2
    assert fresh.digests == [[a.id for a in items]] and held.digests == []
    assert await marked(r, items) == [True] * 3


async def test_redelivered_entry_is_buffered_once(
    r: aioredis.Redis, smtp: tuple[Controller, Handler], http: httpx.AsyncClient
) -> None:
    """The same entry delivered again (before flush, and while the digest is being sent) is
    listed once; after the mail it is skipped."""
    controller, handler = smtp
    clock = Clock()
    items = alerts()
    d = digest_dispatcher(r, mailer(controller.port, http), clock)
    await buffer(d, items)
    await buffer(d, items)
    await buffer(digest_dispatcher(r, mailer(controller.port, http), clock), items[:1])
    assert await r.hlen(KEYS.digest("desk")) == 3

    handler.gate = threading.Event()
    flush = asyncio.create_task(DigestFlusher(d).flush_due(clock.advance(WINDOW)))
    assert await asyncio.to_thread(handler.started.wait, 5)
    await buffer(d, items[:1])  # redelivered while its digest is on the wire
    assert await r.hlen(KEYS.digest("desk")) == 0
    handler.gate.set()
    [result] = await flush
    assert (result.outcome, result.alerts) == ("sent", 3)
    again = await d.deliver("1-0", items[0])
    assert again.skipped == ("desk",) and again.buffered == ()
    assert await d.digests.pending("desk") == 0
    assert len(handler.envelopes) == 1
    assert part(handler.message(), "plain").count("Sudzha <b>1</b> & Kursk") == 1


async def test_two_flushers_at_once_send_one_mail(
    r: aioredis.Redis, smtp: tuple[Controller, Handler], http: httpx.AsyncClient
) -> None:
    """Two flushers (two processes) racing on a due digest: one sends, the other stands aside."""
    controller, handler = smtp
    clock = Clock()
    items = alerts()
    await buffer(digest_dispatcher(r, mailer(controller.port, http), clock), items)
    flushers = [
        DigestFlusher(digest_dispatcher(r, mailer(controller.port, http), clock), token=t)
        for t in ("p1", "p2")
    ]
    due = clock.advance(WINDOW)
    results = await asyncio.gather(*(f.flush_due(due) for f in flushers))
    outcomes = sorted(res.outcome for [res] in results)
    assert outcomes in (["busy", "sent"], ["empty", "sent"])
    assert len(handler.envelopes) == 1
    assert_digest_of(handler.message(), items)


# -- sizes, leftovers, --once, consumer -----------------------------------------------------------


async def test_large_digest_is_split_and_each_mail_committed(
    r: aioredis.Redis, smtp: tuple[Controller, Handler], http: httpx.AsyncClient
) -> None:
    """max_per_message 2: 3 alerts leave as two mails (2 + 1), all marked."""
    controller, handler = smtp
    clock = Clock()
    items = alerts()
    d = digest_dispatcher(r, mailer(controller.port, http), clock)
    await buffer(d, items)
    [result] = await DigestFlusher(d, max_per_message=2).flush_due(clock.advance(WINDOW))
    assert (result.outcome, result.alerts) == ("sent", 3)
    subjects = [handler.message(i)["Subject"].strip() for i in range(len(handler.envelopes))]
    assert subjects[0] == "[feedwatch] 2 alerts, highest [HIGH]"
    assert subjects[1].startswith("[feedwatch] [HIGH] Kursk offensive: Sudzha <b>3</b>")
    assert await marked(r, items) == [True] * 3


async def test_buffer_of_a_notifier_without_digest_is_sent_at_once(r: aioredis.Redis) -> None:
    """digest removed from the config: the old buffer is sent on the next flush, alert by alert."""
    clock = Clock()
    items = alerts()
    await buffer(digest_dispatcher(r, HeldDigest("desk"), clock), items)
    rec = RecordingNotifier("desk")
    plain = Dispatcher(r, KEYS, {"desk": NotifierRuntime("desk", rec)}, settings(), clock=clock)
    [result] = await DigestFlusher(plain).flush_due()
    assert result.outcome == "sent" and [a.id for a in rec.sent] == [a.id for a in items]
    assert await marked(r, items) == [True] * 3
    assert await DigestFlusher(plain).flush_due() == []


async def test_flush_all_sends_before_the_window_and_retries(
    r: aioredis.Redis, http: httpx.AsyncClient
) -> None:
    """run --once: flush_all sends a digest not yet due; against a dead server it backs off
    (injected sleep) and dead-letters after max_attempts."""
    clock = Clock()
    items = alerts()
    held = HeldDigest("desk")
    held.release.set()
    d = digest_dispatcher(r, held, clock)
    await buffer(d, items)
    [result] = await DigestFlusher(d).flush_all()
    assert result.outcome == "sent" and held.digests == [[a.id for a in items]]

    sleeps = Sleeps()
    down = digest_dispatcher(r, mailer(free_port(), http), clock, sleeps, max_attempts=3)
    await buffer(down, [make_alert(9, ["desk"])])  # a new alert: the others were delivered
    [failed] = await DigestFlusher(down).flush_all()
    assert (failed.outcome, failed.attempts) == ("dead", 3)
    assert len(sleeps.delays) == 2 and all(s > 0 for s in sleeps.delays)
    assert len(await dlq_list(r, KEYS)) == 1


async def test_consumer_acks_buffered_entries_and_flushes_on_demand(
    r: aioredis.Redis, smtp: tuple[Controller, Handler], http: httpx.AsyncClient
) -> None:
    """Through the consumer: entries are acked once buffered; flush_digests sends the mail."""
    controller, handler = smtp
    clock = Clock()
    items = alerts()
    s = settings()
    c = Consumer(r, KEYS, digest_dispatcher(r, mailer(controller.port, http), clock), s, name="c1")
    async with running(c):
        for a in items:
            await publish(r, a)
        await asyncio.wait_for(c.drain(), 10)
        assert await c.pending_count() == 0
        assert await r.hlen(KEYS.digest("desk")) == 3 and handler.envelopes == []
        [result] = await c.flush_digests()
    assert result.outcome == "sent" and len(handler.envelopes) == 1
    assert_digest_of(handler.message(), items)
    assert await marked(r, items) == [True] * 3


# -- configuration ------------------------------------------------------------------------------

MAIL = "type: email, host: mail.example.org, from_addr: a@b.example, to: [c@d.example]"


def test_digest_capability() -> None:
    """email and classes with send_digest can digest; others (slack, webhook) cannot."""
    assert supports_digest(EmailNotifier) and supports_digest(HeldDigest)
    assert not any(map(supports_digest, (RecordingNotifier, SlackNotifier, WebhookNotifier)))


def test_config_accepts_digest_on_email(tmp_path: Path) -> None:
    """digest: 15m on an email notifier loads as 900 seconds; omitted means None."""
    path = tmp_path / "feedwatch.yaml"
    path.write_text(f"notifiers:\n  desk: {{{MAIL}, digest: 15m}}\n  now: {{{MAIL}}}\n")
    cfg = load_config(path, env={})
    assert cfg.notifiers["desk"].digest == 900.0 and cfg.notifiers["now"].digest is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (f"{{{MAIL}, digest: soon}}", "expected a duration like '15m' or '1h', got 'soon'"),
        (f"{{{MAIL}, digest: 30s}}", "a digest window must be between 1m and 24h, got '30s'"),
        (f"{{{MAIL}, digest: 2d}}", "a digest window must be between 1m and 24h, got '2d'"),
        ("{type: console, digest: 15m}", "notifier type 'console' does not support digest"),
    ],
)
def test_bad_digest_is_a_located_config_error(entry: str, message: str, tmp_path: Path) -> None:
    """A bad window, or digest on a type that cannot digest, is reported at its line/column."""
    path = tmp_path / "feedwatch.yaml"
    path.write_text(f"notifiers:\n  desk: {entry}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    [problem] = info.value.problems
    assert (problem.where, problem.message, problem.line) == ("notifiers.desk.digest", message, 2)
    column = entry.index("digest: ") + len("digest: ") + len("  desk: ") + 1
    assert problem.column == column
