"""A message for several rules (one item matched them all) names every rule in each notifier's
rendering: the lead rule's headline with ``(+N rules)``, and the rules listed, escaped."""

from __future__ import annotations

import json
from dataclasses import replace

import httpx

from alerts import apprise_notifier, mailfmt, mailhtml, slack, telegram
from alerts.console import ConsoleNotifier
from alerts.wire import Alert, RuleHit
from tests.notifiers.conftest import make_alert


def several() -> Alert:
    hits = (
        RuleHit("dprk", "North Korean troops", "critical", ("n",), "new", "a1"),
        RuleHit("kursk", "Kursk <offensive>", "high", ("n",), "new", "a2"),
        RuleHit("aid", "Weapons aid", "medium", ("n",), "new", "a3"),
    )
    base = make_alert(rule_id="dprk", rule_title="North Korean troops", severity="critical")
    return Alert.from_json(replace(base, notify=("n",), rules=hits).to_json())


async def test_each_rendering_names_every_rule() -> None:
    alert = several()
    listed = "Rules dprk [critical], kursk [high], aid [medium]"
    assert mailfmt.subject([alert]).startswith("[feedwatch] [CRITICAL] North Korean troops (+2")
    assert "Rules: dprk [critical], kursk [high], aid [medium]" in mailfmt.text_part([alert])
    assert listed in mailhtml.html_part([alert])
    assert "(+2 rules)" in mailhtml.html_part([alert])
    text = telegram.render(alert)
    assert "<b>[CRITICAL] North Korean troops (+2 rules)</b>" in text and listed in text
    title, body = apprise_notifier.render(alert, "text")
    assert title == "[CRITICAL] North Korean troops (+2 rules)" and listed in body
    payload = json.dumps(slack.build_payload(alert))
    assert "North Korean troops (+2 rules)" in payload and listed in payload
    async with httpx.AsyncClient() as http:
        console = ConsoleNotifier("c", ConsoleNotifier.Options(format="text"), http=http)
        assert console.render(alert).startswith("[CRITICAL] dprk (+2 rules): ")
        console = ConsoleNotifier("c", ConsoleNotifier.Options(format="json"), http=http)
        assert json.loads(console.render(alert))["rules"] == ["dprk", "kursk", "aid"]


def test_one_rule_reads_as_before() -> None:
    alert = make_alert()
    assert "Rule: kursk" in mailfmt.text_part([alert])
    assert "(+" not in mailfmt.subject([alert])
