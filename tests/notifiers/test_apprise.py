"""The apprise notifier through Apprise's own json:// target, pointed at a local server."""

from __future__ import annotations

import json

import httpx
import pydantic
import pytest

from alerts import registry
from alerts.apprise_notifier import AppriseNotifier, render
from alerts.digest import supports_digest
from daemon.errors import NotifyError
from tests.notifiers.conftest import HOSTILE_TITLE, assert_no_secret, make_alert
from tests.notifiers.fakeservice import FakeService, Reply

PASSWORD = "pw-SECRET-123456"


def notifier(service: FakeService, http: httpx.AsyncClient, *urls: str) -> AppriseNotifier:
    target = f"json://user:{PASSWORD}@127.0.0.1:{service.port}/hook"
    opts = AppriseNotifier.Options.model_validate({"urls": list(urls) or [target]})
    return AppriseNotifier("many", opts, http=http)


def test_registered_and_options_checked() -> None:
    assert registry.load("apprise") is AppriseNotifier
    for bad in ({"urls": []}, {"urls": ["not a url"]}, {"urls": ["json://x"], "extra": 1}):
        with pytest.raises(pydantic.ValidationError):
            AppriseNotifier.Options.model_validate(bad)


def test_feed_text_cannot_forge_markdown() -> None:
    title, body = render(make_alert(title="[click](https://evil.example) # big " + HOSTILE_TITLE))
    assert "](https://evil" not in body and "\\[click\\]\\(https" in body
    assert "\r" not in body and "\n# " not in body
    assert title == "[HIGH] Kursk offensive"


async def test_sends_through_apprise_and_a_failure_is_recoverable(
    service: FakeService, http: httpx.AsyncClient, debug_logs: pytest.LogCaptureFixture
) -> None:
    n = notifier(service, http)
    await n.send(make_alert())
    message = json.loads(service.requests[0].body)
    assert message["title"] == "[HIGH] Kursk offensive"
    assert "Ukraine says its forces advanced in Kursk" in message["message"]
    service.will(Reply(500, b"down"))
    with pytest.raises(NotifyError) as info:
        await n.send(make_alert())
    assert info.value.recoverable
    assert_no_secret(PASSWORD, str(info.value), debug_logs.text)


async def test_a_digest_is_one_message(service: FakeService, http: httpx.AsyncClient) -> None:
    assert supports_digest(AppriseNotifier)
    alerts = [make_alert(id="a"), make_alert(id="b", title="[x](http://evil) second")]
    await notifier(service, http).send_digest(alerts)
    message = json.loads(service.requests[0].body)
    assert message["title"] == "feedwatch: 2 alerts"
    assert message["message"].count("\n- ") == 1 and "](http://evil" not in message["message"]
