"""The telegram notifier against a local stand-in for the Telegram Bot API (alerts/telegram.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import httpx
import pydantic
import pytest
import redis.asyncio as aioredis

from alerts import registry
from alerts.digest import supports_digest
from alerts.telegram import MESSAGE_MAX, TelegramNotifier, render, render_digest
from alerts.threads import ThreadStore
from daemon.errors import NotifyError
from daemon.redis.keys import Keys
from tests.notifiers.conftest import HOSTILE_TITLE, assert_no_secret, make_alert
from tests.notifiers.fakeservice import Close, FakeService, Reply, Slow

TOKEN = "123456789:AAHsecretTOKENvalue_abcdefghijk"


def ok(message_id: int) -> Reply:
    return Reply(200, json.dumps({"ok": True, "result": {"message_id": message_id}}).encode())


def error(status: int, description: str, **extra: Any) -> Reply:
    body = {"ok": False, "error_code": status, "description": description, **extra}
    return Reply(status, json.dumps(body).encode())


def telegram(service: FakeService, http: httpx.AsyncClient, **options: Any) -> TelegramNotifier:
    opts = TelegramNotifier.Options.model_validate(
        {"bot_token": TOKEN, "chat_id": "-1001234567890", "api_url": service.url("/"), **options}
    )
    return TelegramNotifier("tg", opts, http=http)


def sent(service: FakeService, i: int = -1) -> dict[str, Any]:
    return json.loads(service.requests[i].body)


def test_registered_and_options_checked() -> None:
    assert registry.load("telegram") is TelegramNotifier
    options = TelegramNotifier.Options
    assert options.model_validate({"bot_token": TOKEN, "chat_id": "@ukraine_desk"})
    assert options.model_validate({"bot_token": TOKEN, "chat_id": -100123}).chat_id == "-100123"
    for bad in (
        {"bot_token": TOKEN, "chat_id": "ukraine desk"},
        {"bot_token": "not-a-token", "chat_id": "@ukraine_desk"},
        {"bot_token": TOKEN, "chat_id": "@ukraine_desk", "chat": "typo"},
        {"bot_token": TOKEN, "chat_id": "@ukraine_desk", "api_url": "ftp://x"},
    ):
        with pytest.raises(pydantic.ValidationError) as info:
            options.model_validate(bad)
        assert TOKEN not in str(info.value)


def test_feed_text_is_escaped_and_no_tag_from_a_feed_survives() -> None:
    alert = make_alert(
        title=HOSTILE_TITLE + ' <a href="https://evil.example">click</a> <b>bold</b> *md* _x_',
        excerpt="<i>not italic</i> & Kursk <script>",
        link="javascript:alert(1)",
    )
    text = render(alert)
    for tag in ("<script", '<a href="https://evil', "<i>not", "<b>bold", "<!channel>"):
        assert tag not in text
    assert "&lt;script&gt;" in text and "&amp;" in text
    assert "javascript:" not in text  # not an http(s) link: the title is shown unlinked
    assert "\r" not in text and "Bcc: x@evil" in text  # header tricks are only text here


def test_matched_words_bold_sources_and_the_limit() -> None:
    alert = replace(
        make_alert(excerpt="Fighting near Kursk continued. " * 400),
        extra={"sources": ["kyiv-daily", "wire"], "source_count": 2},
    )
    text = render(alert)
    assert len(text) <= MESSAGE_MAX
    assert "<b>Kursk</b>" in text and "Sources (2): kyiv-daily, wire" in text
    assert '<a href="https://news.example.org/kursk?a=1&amp;b=2">' in text


async def test_sends_html_to_the_chat_with_previews_off(
    service: FakeService, http: httpx.AsyncClient
) -> None:
    service.will(ok(7))
    await telegram(service, http, message_thread_id=42).send(make_alert())
    request = service.requests[0]
    assert request.path == f"/bot{TOKEN}/sendMessage"
    body = sent(service)
    assert body["chat_id"] == -1001234567890 and body["parse_mode"] == "HTML"
    assert body["link_preview_options"] == {"is_disabled": True}
    assert body["message_thread_id"] == 42 and "reply_parameters" not in body


async def test_a_follow_up_replies_to_the_storys_first_message(
    service: FakeService, http: httpx.AsyncClient, redis_url: str
) -> None:
    r = aioredis.Redis.from_url(redis_url)
    notifier = telegram(service, http)
    notifier.threads = ThreadStore(r, Keys("tg"), "tg")
    first = make_alert(id="first-1")
    update = replace(
        make_alert(id="update-1", kind="update", feed="wire"),
        extra={"first_alert_id": "first-1", "sources": ["a", "wire"], "source_count": 2},
    )
    other = replace(make_alert(id="update-2", kind="update"), extra={"first_alert_id": "gone"})
    service.will(ok(501), ok(502), ok(503))
    await notifier.send(first)
    await notifier.send(update)
    await notifier.send(other)
    assert sent(service, 1)["reply_parameters"] == {
        "message_id": 501,
        "allow_sending_without_reply": True,
    }
    assert "Also reported by wire" in sent(service, 1)["text"]
    assert "reply_parameters" not in sent(service, 2)  # its first message is unknown
    await r.aclose()


@pytest.mark.parametrize(
    ("reply", "recoverable", "reason", "retry_after"),
    [
        (error(429, "Too Many Requests: retry after 7", parameters={"retry_after": 7}),
         True, "rate_limited", 7.0),
        (error(400, "Bad Request: chat not found"), False, "client", None),
        (error(403, "Forbidden: bot was blocked by the user"), False, "client", None),
        (error(401, "Unauthorized"), False, "auth", None),
        (error(502, "Bad Gateway"), True, "server", None),
        (Reply(200, b'{"ok": false, "description": "odd"}'), False, "client", None),
    ],
)  # fmt: skip
async def test_errors_map_to_recoverable_or_permanent(
    service: FakeService,
    http: httpx.AsyncClient,
    reply: Reply,
    recoverable: bool,
    reason: str,
    retry_after: float | None,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    service.will(reply)
    with pytest.raises(NotifyError) as info:
        await telegram(service, http).send(make_alert())
    e = info.value
    assert (e.recoverable, e.reason, e.retry_after) == (recoverable, reason, retry_after)
    assert_no_secret(TOKEN, str(e), e.message, debug_logs.text)
    assert_no_secret(TOKEN.split(":")[1], str(e), debug_logs.text)


async def test_a_dropped_connection_is_recoverable_and_keeps_the_token_secret(
    service: FakeService, http: httpx.AsyncClient, debug_logs: pytest.LogCaptureFixture
) -> None:
    service.will(Close())
    with pytest.raises(NotifyError) as info:
        await telegram(service, http).send(make_alert())
    assert info.value.recoverable and info.value.reason == "transport"
    assert_no_secret(TOKEN.split(":")[1], str(info.value), debug_logs.text)


async def test_a_digest_is_one_message_grouped_by_story_within_the_limit(
    service: FakeService, http: httpx.AsyncClient
) -> None:
    assert supports_digest(TelegramNotifier)
    first = replace(make_alert(id="a1", title="<b>Kursk</b> & more"), extra={"story_id": "s1"})
    other = replace(make_alert(id="b1", title="Another story"), extra={"story_id": "s2"})
    follow = replace(make_alert(id="a2", kind="update", feed="wire"), extra={"story_id": "s1"})
    text = render_digest([first, other, follow])
    lines = text.splitlines()
    assert lines[0] == "<b>feedwatch: 3 alerts</b>"
    assert lines[2].startswith("  ↪ ") and "wire" in lines[2]  # the follow-up under its story
    assert "&lt;b&gt;Kursk&lt;/b&gt; &amp; more" in text
    many = [replace(make_alert(id=f"x{i}", title="t" * 190), extra={}) for i in range(200)]
    long = render_digest(many)
    assert len(long) <= MESSAGE_MAX and long.endswith("more")
    service.will(ok(9))
    await telegram(service, http).send_digest([first, other, follow])
    assert sent(service)["text"] == text and sent(service)["parse_mode"] == "HTML"


async def test_a_slow_api_is_a_recoverable_timeout(
    service: FakeService, http: httpx.AsyncClient
) -> None:
    service.will(Slow())
    with pytest.raises(NotifyError) as info:
        await telegram(service, http, timeout=0.2).send(make_alert())
    assert info.value.recoverable and info.value.reason == "timeout"
    assert_no_secret(TOKEN.split(":")[1], str(info.value))
