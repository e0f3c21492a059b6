"""The slack notifier with a bot token: chat.postMessage into story threads, against a local
stand-in for Slack's Web API that answers like it (HTTP 200 with ok: false for errors)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import httpx
import pydantic
import pytest
import redis.asyncio as aioredis

from alerts.slack import SlackNotifier
from alerts.threads import ThreadStore
from daemon.errors import NotifyError
from daemon.redis.keys import Keys
from tests.notifiers.conftest import HOSTILE_TITLE, assert_no_secret, make_alert
from tests.notifiers.fakeservice import FakeService, Reply, Slow

TOKEN = "xoxb-1234-5678-SECRETbottoken"


def ok(ts: str) -> Reply:
    return Reply(200, json.dumps({"ok": True, "channel": "C123", "ts": ts}).encode())


def fail(code: str, status: int = 200, **headers: str) -> Reply:
    return Reply(status, json.dumps({"ok": False, "error": code}).encode(), headers)


def bot(service: FakeService, http: httpx.AsyncClient, **options: Any) -> SlackNotifier:
    opts = SlackNotifier.Options.model_validate(
        {"token": TOKEN, "channel": "#ukraine-desk", "api_url": service.url("/api"),
         "min_interval": 0, **options}
    )  # fmt: skip
    return SlackNotifier("desk", opts, http=http)


def posted(service: FakeService, i: int) -> dict[str, Any]:
    return json.loads(service.requests[i].body)


def test_one_mode_per_notifier() -> None:
    options = SlackNotifier.Options
    for bad in (
        {"token": TOKEN},  # no channel
        {"token": TOKEN, "channel": "#x", "webhook_url": "https://hooks.example/x"},
        {},
        {"token": TOKEN, "channel": "#x", "api_url": "file:///etc"},
    ):
        with pytest.raises(pydantic.ValidationError) as info:
            options.model_validate(bad)
        assert_no_secret(TOKEN, str(info.value))
    assert_no_secret(TOKEN, repr(options.model_validate({"token": TOKEN, "channel": "#x"})))


async def test_a_story_is_one_message_and_a_thread_of_replies(
    service: FakeService, http: httpx.AsyncClient, redis_url: str
) -> None:
    """The first alert is top level; two follow-ups from other outlets reply in its thread."""
    r = aioredis.Redis.from_url(redis_url)
    notifier = bot(service, http)
    notifier.threads = ThreadStore(r, Keys("sb"), "desk")
    first = make_alert(id="first", title=HOSTILE_TITLE)
    follow = [
        replace(
            make_alert(id=f"up-{n}", kind="update", feed=feed),
            extra={"first_alert_id": "first", "sources": ["a", feed], "source_count": n + 1},
        )
        for n, feed in ((2, "wire"), (3, "kyiv-daily"))
    ]
    service.will(ok("1700000000.000100"), ok("1700000000.000200"), ok("1700000000.000300"))
    for alert in (first, *follow):
        await notifier.send(alert)
    top, one, two = (posted(service, i) for i in range(3))
    assert service.requests[0].path == "/api/chat.postMessage"
    assert service.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert top["channel"] == "#ukraine-desk" and "thread_ts" not in top
    assert one["thread_ts"] == two["thread_ts"] == "1700000000.000100"
    assert one["reply_broadcast"] is False
    assert "<!channel>" not in json.dumps(top) and "&lt;!channel&gt;" in json.dumps(top)
    await r.aclose()


@pytest.mark.parametrize(
    ("reply", "recoverable", "reason"),
    [
        (fail("ratelimited", **{"Retry-After": "12"}), True, "rate_limited"),
        (Reply(429, b"", {"Retry-After": "3"}), True, "rate_limited"),
        (fail("internal_error"), True, "server"),
        (fail("invalid_auth"), False, "auth"),
        (fail("channel_not_found"), False, "client"),
        (fail("not_in_channel"), False, "client"),
        (fail("is_archived"), False, "client"),
        (Reply(500, b"oops"), True, "server"),
    ],
)
async def test_errors_are_recoverable_or_dead_lettered_with_the_code(
    service: FakeService,
    http: httpx.AsyncClient,
    reply: Reply,
    recoverable: bool,
    reason: str,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    service.will(reply)
    with pytest.raises(NotifyError) as info:
        await bot(service, http).send(make_alert())
    e = info.value
    assert (e.recoverable, e.reason) == (recoverable, reason)
    if reply.status == 200:
        assert json.loads(reply.body)["error"] in e.message  # the code, for the dead letter
    if "Retry-After" in reply.headers:
        assert e.retry_after == float(reply.headers["Retry-After"])
    assert_no_secret(TOKEN, str(e), debug_logs.text)


async def test_a_slow_api_is_a_recoverable_timeout(
    service: FakeService, http: httpx.AsyncClient
) -> None:
    service.will(Slow())
    with pytest.raises(NotifyError) as info:
        await bot(service, http, timeout=0.2).send(make_alert())
    assert info.value.recoverable and info.value.reason == "timeout"
    assert_no_secret(TOKEN, str(info.value))
