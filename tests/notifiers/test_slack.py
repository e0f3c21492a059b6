"""The slack notifier against a real local HTTP server standing in for Slack."""

from __future__ import annotations

import asyncio
import json
import traceback
from typing import Any

import httpx
import pydantic
import pytest

from alerts import registry
from alerts.slack import BLOCKS_MAX, HEADER_MAX, SECTION_MAX, SlackNotifier, build_payload
from daemon.errors import NotifyError
from tests.notifiers.conftest import HOSTILE_TITLE, assert_no_secret, make_alert
from tests.notifiers.fakeservice import Close, FakeService, Reply, Slow

SECRET_PATH = "/services/T0000/B0000/xoxSECRETtoken123"


class FakeTime:
    """An injected clock: ``sleep`` advances it and records how long it was asked to wait."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def notifier(
    service: FakeService,
    http: httpx.AsyncClient,
    fake_time: FakeTime | None = None,
    **options: Any,
) -> SlackNotifier:
    options.setdefault("webhook_url", service.url(SECRET_PATH))
    options.setdefault("min_interval", 0)
    opts = SlackNotifier.Options.model_validate(options)
    if fake_time is None:
        return SlackNotifier("team-slack", opts, http=http)
    return SlackNotifier(
        "team-slack", opts, http=http, clock=fake_time.clock, sleep=fake_time.sleep
    )


def texts(payload: dict[str, Any]) -> list[str]:
    """Every text string in a Slack payload."""
    out = [payload["text"]]
    for block in payload["blocks"]:
        if "text" in block:
            out.append(block["text"]["text"])
        out.extend(e["text"] for e in block.get("elements", ()))
    return out


def test_registered_as_entry_point() -> None:
    """The built-in is discovered through the feedwatch.notifiers entry point."""
    assert registry.load("slack") is SlackNotifier


async def test_delivers_block_kit_message(service: FakeService, http: httpx.AsyncClient) -> None:
    """A 200 "ok" is success; the posted JSON has header, linked title, excerpt, context."""
    await notifier(service, http).send(make_alert())
    [req] = service.requests
    assert req.method == "POST" and req.path == SECRET_PATH
    assert req.headers["content-type"].startswith("application/json")
    payload = json.loads(req.body)
    header, title, excerpt, context = payload["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "[HIGH] Kursk offensive", "emoji": True},
    }
    assert title["text"]["text"] == (
        "*<https://news.example.org/kursk?a=1&amp;b=2|Ukraine says its forces advanced in Kursk>*"
        "\nexample-news · 2024-08-13 09:30 UTC"
    )
    assert excerpt["text"]["text"] == (
        "*Ukrainian* troops pushed deeper into the *Kursk* region on Tuesday."
    )
    assert context["elements"][0]["text"] == "Rule kursk · matched: kursk, ukrain*"
    assert payload["text"] == "[HIGH] Kursk offensive: Ukraine says its forces advanced in Kursk"


async def test_hostile_feed_text_is_escaped(service: FakeService, http: httpx.AsyncClient) -> None:
    """Mentions, forged links and HTML in feed text reach Slack as inert &lt;…&gt; text."""
    alert = make_alert(
        title=HOSTILE_TITLE,
        excerpt="Ping <!here> and <@U999>, see <https://evil.example|the bank> & more",
        feed="<!everyone>",
        terms=("channel",),
    )
    await notifier(service, http).send(alert)
    payload = json.loads(service.requests[0].body)
    joined = "\n".join(texts(payload))
    assert "&lt;!channel&gt;" in joined
    for raw in (
        "<!channel>",
        "<@U123>",
        "<http://evil",
        "<!here>",
        "<@U999>",
        "<!everyone>",
        "<https://evil",
        "<script>",
        "\r",
        "\n\nBcc",
    ):
        assert raw not in joined
    assert "&lt;https://evil.example|the bank&gt; &amp; more" in joined
    # The only link is the item's own.
    assert joined.count("<https://") == 1 and "<http://" not in joined


def test_non_http_links_are_not_linked() -> None:
    """javascript:, data: and relative links give the title without a link."""
    for link in ("javascript:alert(1)", "data:text/html,x", "/relative", "https://", None):
        section = build_payload(make_alert(link=link))["blocks"][1]["text"]["text"]
        assert section.startswith("*Ukraine says") and "<" not in section


def test_link_target_cannot_break_out_of_the_link() -> None:
    """A | or > inside the URL is %-encoded so the label cannot be forged."""
    section = build_payload(make_alert(link="https://x.example/a|b>c"))["blocks"][1]
    assert section["text"]["text"].startswith("*<https://x.example/a%7Cb%3Ec|Ukraine")


def test_highlights_whole_words_case_insensitively_and_escapes_first() -> None:
    """Terms are bolded as whole words; "war" does not mark "award"; & stays an entity."""
    alert = make_alert(
        excerpt="War & peace: an award for KURSK reporting; warfare in kursk.",
        terms=("war", "kursk", "amp"),
    )
    text = build_payload(alert)["blocks"][2]["text"]["text"]
    assert text == "*War* &amp; peace: an award for *KURSK* reporting; *warfare* in *kursk*."


def test_limits_are_respected() -> None:
    """Header ≤ 150, sections ≤ 3,000, blocks ≤ 50; cut text ends with "…"."""
    alert = make_alert(
        rule_title="R" * 400,
        title="<&>" * 2000,
        excerpt="kursk & " * 1000,
        feed="<feed>" * 1000,
        terms=tuple(f"term{i}" for i in range(800)),
    )
    payload = build_payload(alert)
    header = payload["blocks"][0]["text"]["text"]
    assert len(header) == HEADER_MAX and header.endswith("…")
    assert len(payload["blocks"]) <= BLOCKS_MAX
    for text in texts(payload):
        assert len(text) <= SECTION_MAX
    excerpt = payload["blocks"][2]["text"]["text"]
    assert excerpt.endswith("…") and excerpt.count("*") % 2 == 0
    assert "&amp" in excerpt and not excerpt.rstrip("…").endswith(("&", "&a", "&am", "&amp"))


async def test_username_and_icon_are_sent(service: FakeService, http: httpx.AsyncClient) -> None:
    """Optional username/icon options appear in the payload."""
    await notifier(service, http, username="feedwatch", icon_emoji=":newspaper:").send(make_alert())
    payload = json.loads(service.requests[0].body)
    assert payload["username"] == "feedwatch" and payload["icon_emoji"] == ":newspaper:"


@pytest.mark.parametrize(
    ("reply", "recoverable", "reason", "retry_after", "words"),
    [
        (Reply(500, b"internal_error"), True, "server", None, "HTTP 500"),
        (Reply(503, b"", {"Retry-After": "7"}), True, "server", 7.0, "HTTP 503"),
        (Reply(429, b"rate_limited", {"Retry-After": "30"}), True, "rate_limited", 30.0, "429"),
        (Reply(400, b"invalid_payload"), False, "client", None, "invalid_payload"),
        (Reply(403, b"action_prohibited"), False, "client", None, "HTTP 403"),
        (Reply(404, b"no_service"), False, "client", None, "no_service"),
        (Reply(410, b"channel_is_archived"), False, "client", None, "HTTP 410"),
    ],
)
async def test_error_statuses(
    service: FakeService,
    http: httpx.AsyncClient,
    debug_logs: pytest.LogCaptureFixture,
    reply: Reply,
    recoverable: bool,
    reason: str,
    retry_after: float | None,
    words: str,
) -> None:
    """Each Slack answer maps to the right NotifyError, and the webhook URL never leaks."""
    service.will(reply)
    with pytest.raises(NotifyError) as info:
        await notifier(service, http).send(make_alert())
    e = info.value
    assert (e.recoverable, e.reason, e.retry_after) == (recoverable, reason, retry_after)
    assert words in e.message and e.message.startswith("Slack answered")
    rendered = "".join(traceback.format_exception(e))
    assert_no_secret(SECRET_PATH, str(e), repr(e), rendered, debug_logs.text)


async def test_timeout_is_recoverable(
    service: FakeService, http: httpx.AsyncClient, debug_logs: pytest.LogCaptureFixture
) -> None:
    """A Slack that does not answer within ``timeout`` gives a recoverable timeout."""
    service.will(Slow())
    with pytest.raises(NotifyError) as info:
        await notifier(service, http, timeout=0.2).send(make_alert())
    assert (info.value.recoverable, info.value.reason) == (True, "timeout")
    rendered = "".join(traceback.format_exception(info.value))
    assert_no_secret(SECRET_PATH, str(info.value), rendered, debug_logs.text)


async def test_closed_connection_is_recoverable(
    service: FakeService, http: httpx.AsyncClient, debug_logs: pytest.LogCaptureFixture
) -> None:
    """A connection dropped without an answer gives a recoverable transport error."""
    service.will(Close())
    with pytest.raises(NotifyError) as info:
        await notifier(service, http).send(make_alert())
    assert (info.value.recoverable, info.value.reason) == (True, "transport")
    rendered = "".join(traceback.format_exception(info.value))
    assert_no_secret(SECRET_PATH, str(info.value), rendered, debug_logs.text)


async def test_connection_refused_is_recoverable(
    http: httpx.AsyncClient, debug_logs: pytest.LogCaptureFixture
) -> None:
    """Nothing listening gives a recoverable transport error without the URL in it."""
    with FakeService() as gone:
        url = gone.url(SECRET_PATH)
    opts = SlackNotifier.Options(webhook_url=url)  # type: ignore[arg-type]
    with pytest.raises(NotifyError) as info:
        await SlackNotifier("s", opts, http=http).send(make_alert())
    assert (info.value.recoverable, info.value.reason) == (True, "transport")
    assert_no_secret(SECRET_PATH, str(info.value), debug_logs.text)


async def test_success_log_lines_hide_the_webhook_url(
    service: FakeService, http: httpx.AsyncClient, debug_logs: pytest.LogCaptureFixture
) -> None:
    """httpx's own "HTTP Request: POST <url>" line is redacted."""
    await notifier(service, http).send(make_alert())
    assert any("HTTP Request" in r.getMessage() for r in debug_logs.records)
    assert_no_secret(SECRET_PATH, debug_logs.text)
    assert "***" in debug_logs.text


async def test_two_sends_are_spaced_by_min_interval(
    service: FakeService, http: httpx.AsyncClient
) -> None:
    """The second send to one webhook waits min_interval (injected clock), then goes out."""
    t = FakeTime()
    n = notifier(service, http, t, min_interval=1.0)
    await n.send(make_alert(title="first kursk"))
    await n.send(make_alert(title="second kursk"))
    assert t.sleeps == [1.0]
    assert [json.loads(r.body)["text"].split(": ")[1] for r in service.requests] == [
        "first kursk",
        "second kursk",
    ]


async def test_concurrent_sends_are_queued_in_order_not_dropped(
    service: FakeService, http: httpx.AsyncClient
) -> None:
    """Three concurrent sends (two instances, one webhook) all arrive, in order, paced."""
    t = FakeTime()
    a = notifier(service, http, t, min_interval=2.0)
    b = notifier(service, http, t, min_interval=2.0)
    await asyncio.gather(
        a.send(make_alert(title="one")),
        b.send(make_alert(title="two")),
        a.send(make_alert(title="three")),
    )
    assert t.sleeps == [2.0, 2.0]
    titles = [json.loads(r.body)["text"].split(": ")[1] for r in service.requests]
    assert titles == ["one", "two", "three"]


async def test_other_webhooks_are_not_held_back(
    service: FakeService, http: httpx.AsyncClient
) -> None:
    """Pacing is per webhook URL: a different URL does not wait."""
    t = FakeTime()
    await notifier(service, http, t, min_interval=5.0).send(make_alert())
    other = notifier(service, http, t, min_interval=5.0, webhook_url=service.url("/other"))
    await other.send(make_alert())
    assert t.sleeps == []


async def test_rate_limit_pushes_the_next_send_back(
    service: FakeService, http: httpx.AsyncClient
) -> None:
    """After a 429 with Retry-After 30, the next send to that webhook waits 30 s."""
    t = FakeTime()
    n = notifier(service, http, t, min_interval=1.0)
    service.will(Reply(429, b"rate_limited", {"Retry-After": "30"}))
    with pytest.raises(NotifyError):
        await n.send(make_alert())
    await n.send(make_alert())
    assert t.sleeps == [30.0]
    assert len(service.requests) == 2


def test_options_are_strict_and_hide_the_url() -> None:
    """Unknown keys and non-http URLs are rejected; repr and errors never show the URL."""
    url = "https://hooks.example.invalid" + SECRET_PATH
    opts = SlackNotifier.Options(webhook_url=url)  # type: ignore[arg-type]
    assert_no_secret(SECRET_PATH, repr(opts), str(opts))
    with pytest.raises(pydantic.ValidationError):
        SlackNotifier.Options.model_validate({"webhook_url": url, "channel": "#x"})
    with pytest.raises(pydantic.ValidationError) as info:
        SlackNotifier.Options.model_validate({"webhook_url": "ftp://x" + SECRET_PATH})
    assert_no_secret(SECRET_PATH, str(info.value))
