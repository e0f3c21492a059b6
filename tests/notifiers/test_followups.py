"""A story's follow-up (kind: update) in Slack (a compact message to a real HTTP service) and in
email (a reply threaded under the first alert's mail, through a real SMTP server)."""

from __future__ import annotations

import email
import email.policy
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from alerts.console import ConsoleNotifier
from alerts.email import EmailNotifier
from alerts.slack import SlackNotifier, build_payload
from alerts.wire import Alert
from tests.notifiers.conftest import HOSTILE_TITLE, make_alert
from tests.notifiers.fakeservice import FakeService

FIRST = replace(
    make_alert(id="first-alert-id"),
    extra={"story_id": "s1", "sources": ["example-news"], "source_count": 1},
)


def follow_up(**kw: Any) -> Alert:
    base = make_alert(id="update-id", kind="update", feed="abc-news", **kw)
    extra = {
        "story_id": "s1",
        "first_alert_id": FIRST.id,
        "sources": ["example-news", "bbc", "abc-news"],
        "source_count": 3,
        "first_title": FIRST.item.title,
    }
    return replace(base, extra=extra)


async def test_slack_follow_up_is_compact(service: FakeService, http: httpx.AsyncClient) -> None:
    """A follow-up is a two-block message: who else reported it, the sources, the new item
    linked; the context names the first alert's title."""
    opts = SlackNotifier.Options.model_validate({"webhook_url": service.url("/hook")})
    await SlackNotifier("s", opts, http=http, clock=lambda: 0.0).send(follow_up())
    payload = json.loads(service.requests[0].body)
    section, context = payload["blocks"]
    assert section["text"]["text"] == (
        "*Also reported by abc-news — 3 sources*: example-news, bbc, abc-news\n"
        "<https://news.example.org/kursk?a=1&amp;b=2|Ukraine says its forces advanced in Kursk>"
    )
    assert context["elements"][0]["text"] == (
        "[HIGH] Kursk offensive · follow-up to “Ukraine says its forces advanced in Kursk” "
        "· rule kursk"
    )
    assert payload["text"].startswith("Also reported by abc-news — 3 sources: ")


def test_slack_follow_up_escapes_feed_text() -> None:
    """Hostile titles and source names in a follow-up reach Slack inert."""
    alert = follow_up(title=HOSTILE_TITLE)
    alert = replace(alert, extra={**alert.extra, "sources": ["<!channel>"], "first_title": "<@U1>"})
    text = json.dumps(build_payload(alert))
    assert "<!channel>" not in text and "<@U1>" not in text and "<http://evil" not in text
    assert "&lt;!channel&gt;" in text


def test_console_text_names_the_new_source() -> None:
    """The console's text line of a follow-up: "update … also reported by X — N sources"."""
    opts = ConsoleNotifier.Options()
    line = ConsoleNotifier("c", opts, http=httpx.AsyncClient()).render(follow_up())
    assert line.startswith("[HIGH] update kursk: also reported by abc-news — 3 sources: Ukraine")
    as_json = ConsoleNotifier.Options(format="json")
    obj = json.loads(ConsoleNotifier("c", as_json, http=httpx.AsyncClient()).render(follow_up()))
    assert (obj["kind"], obj["story_id"], obj["source_count"]) == ("update", "s1", 3)
    assert obj["sources"] == ["example-news", "bbc", "abc-news"]


@dataclass
class Inbox:
    envelopes: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def message(self, i: int) -> EmailMessage:
        msg = email.message_from_bytes(self.envelopes[i].content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()


async def test_email_follow_up_replies_to_the_first_mail(smtp: tuple[int, Inbox]) -> None:
    """The follow-up's In-Reply-To and References are the first mail's Message-ID, its
    Subject is "Re:" and the first mail's; the body says who else reported it."""
    port, inbox = smtp
    opts = EmailNotifier.Options.model_validate(
        {"host": "127.0.0.1", "port": port, "security": "none", "timeout": 5,
         "from_addr": "feedwatch@alerts.example.org", "to": ["desk@example.org"]}
    )  # fmt: skip
    now = datetime(2024, 8, 13, 10, 0, tzinfo=UTC)
    async with httpx.AsyncClient() as http:
        mailer = EmailNotifier("mail", opts, http=http, now=lambda: now)
        await mailer.send(FIRST)
        await mailer.send(follow_up(title="ABC: Kyiv's forces advance in Kursk"))
    first, reply = inbox.message(0), inbox.message(1)
    assert "In-Reply-To" not in first
    assert reply["In-Reply-To"] == first["Message-ID"] == reply["References"]
    assert reply["Message-ID"] != first["Message-ID"]
    assert reply["Subject"].strip() == "Re: " + first["Subject"].strip()
    text = reply.get_body(("plain",))
    assert text is not None
    assert "Also reported by abc-news — 3 sources: example-news, bbc, abc-news" in str(
        text.get_content()
    )
