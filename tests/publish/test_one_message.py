"""One message per item and notifier: the alerts one item raises for several rules travel as one
stream entry naming every rule (highest severity first); each notifier sees the rules routed to
it; follow-ups reply to the message that carried their rule's first alert (real Redis)."""

from __future__ import annotations

from datetime import UTC, datetime

import redis.asyncio as aioredis

from alerts.wire import Alert, AlertItem, AlertMatch, AlertRule
from daemon.publish.stream import Publisher, alert_id, story_alert, story_alert_id
from daemon.redis.keys import Keys
from tests.support.redis_topologies import aclient

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
KEYS = Keys("om")
SID = "00abcd000001"  # a story id: hour and number, 6 hex digits each
ROUTES = {  # rule → (severity, notifiers)
    "kursk": ("high", ("slack", "console")),
    "north-korean-troops": ("critical", ("slack",)),
    "weapons-aid": ("medium", ("mail", "console")),
}


def base(rule: str, item: str, feed: str = "wire") -> Alert:
    severity, notify = ROUTES[rule]
    return Alert(
        id=alert_id(rule, feed, item),
        rule=AlertRule(id=rule, title=rule.replace("-", " ").title(), severity=severity),
        item=AlertItem(
            id=item, title=f"Title {item}", link=None, excerpt="", published=NOW, feed=feed
        ),
        matches=(AlertMatch(term=rule, field="title", start=0, end=3),),
        created=NOW,
        notify=notify,
    )


async def stream(r: aioredis.Redis) -> list[Alert]:
    return [Alert.from_json(f[b"data"]) for _, f in await r.xrange(KEYS.alerts)]


async def test_three_rules_one_item_is_one_message(redis_url: str) -> None:
    """Three rules match one item: one entry, rules highest severity first, the lead rule the
    highest; every notifier of any rule is routed; all outcomes share the entry."""
    r = aclient(redis_url)
    pub = Publisher(r, KEYS)
    candidates = [story_alert(base(rule, "1"), SID) for rule in ROUTES]
    outcomes = await pub.publish_story(candidates, NOW)
    assert [o.status for o in outcomes] == ["new", "new", "new"]
    assert len({o.entry_id for o in outcomes}) == 1
    [msg] = await stream(r)
    assert [h.id for h in msg.rules] == ["north-korean-troops", "kursk", "weapons-aid"]
    assert msg.rule.id == "north-korean-troops" and msg.kind == "new"
    assert msg.id == story_alert_id("north-korean-troops", SID)
    assert set(msg.notify) == {"slack", "console", "mail"}
    assert {h.alert_id for h in msg.rules} == {story_alert_id(rule, SID) for rule in ROUTES}
    # Each rule's first alert is recorded: publishing again is nothing.
    again = await pub.publish_story(candidates, NOW)
    assert [o.status for o in again] == ["dup", "dup", "dup"]
    assert len(await stream(r)) == 1
    await r.aclose()


async def test_each_notifier_sees_its_rules() -> None:
    """``for_notifier``: only the rules routed there, the highest first; none routed → None."""
    msg = Alert.from_dict(
        {
            **base("kursk", "1").to_dict(),
            "rules": [
                {**_hit("north-korean-troops"), "kind": "new"},
                {**_hit("kursk"), "kind": "new"},
                {**_hit("weapons-aid"), "kind": "new"},
            ],
        }
    )
    slack = msg.for_notifier("slack")
    mail = msg.for_notifier("mail")
    console = msg.for_notifier("console")
    assert slack is not None and mail is not None and console is not None
    assert [h.id for h in slack.rules] == ["north-korean-troops", "kursk"]
    assert slack.rule.id == "north-korean-troops" and slack.rule.severity == "critical"
    assert [h.id for h in mail.rules] == ["weapons-aid"] and mail.rule.severity == "medium"
    assert [h.id for h in console.rules] == ["kursk", "weapons-aid"]
    assert {m.term for m in console.matches} == {"kursk", "weapons-aid"}
    assert msg.for_notifier("pager") is None
    assert slack.id == mail.id == msg.id  # one message: delivery is tracked per (id, notifier)
    assert Alert.from_json(slack.to_json()) == slack


def _hit(rule: str) -> dict[str, object]:
    severity, notify = ROUTES[rule]
    return {
        "id": rule,
        "title": rule,
        "severity": severity,
        "notify": list(notify),
        "alert_id": story_alert_id(rule, SID),
        "matches": [{"term": rule, "field": "title", "start": 0, "end": 3}],
    }


async def test_follow_ups_of_several_rules_reply_to_the_message_that_went_out(
    redis_url: str,
) -> None:
    """A later item of the story matching kursk and weapons-aid is one update whose rules
    both name the first message (led by another rule) as ``first_alert_id``; a rule new to
    the story makes the message new, its other rules still follow-ups."""
    r = aclient(redis_url)
    pub = Publisher(r, KEYS)
    await pub.publish_story(
        [story_alert(base(rule, "1"), SID) for rule in ("north-korean-troops", "kursk")], NOW
    )
    [first] = await stream(r)
    out = await pub.publish_story(
        [story_alert(base(rule, "2", "desk"), SID) for rule in ("kursk", "north-korean-troops")],
        NOW,
    )
    assert [o.status for o in out] == ["update", "update"]
    second = (await stream(r))[1]
    assert second.kind == "update" and second.rule.id == "north-korean-troops"
    assert [h.first_alert_id for h in second.rules] == [first.id, first.id]
    assert second.extra["first_alert_id"] == first.id
    assert [h.first_title for h in second.rules] == ["Title 1", "Title 1"]
    assert out[0].alert is not None and out[0].alert.extra["first_alert_id"] == first.id
    # Third item: weapons-aid is new to the story, kursk a follow-up: one new message.
    await pub.publish_story(
        [story_alert(base(rule, "3", "kyiv"), SID) for rule in ("kursk", "weapons-aid")], NOW
    )
    third = (await stream(r))[2]
    assert third.kind == "new" and third.rule.id == "weapons-aid"
    assert third.id == story_alert_id("weapons-aid", SID)
    assert [(h.id, h.kind) for h in third.rules] == [("kursk", "update"), ("weapons-aid", "new")]
    slack = third.for_notifier("slack")
    assert slack is not None and slack.kind == "update" and slack.rule.id == "kursk"
    assert slack.extra["first_alert_id"] == first.id
    mail = third.for_notifier("mail")
    assert mail is not None and mail.kind == "new" and "first_alert_id" not in mail.extra
    # A follow-up of weapons-aid names the third message, which carried its first alert.
    await pub.publish_story([story_alert(base("weapons-aid", "4", "pap"), SID)], NOW)
    fourth = (await stream(r))[3]
    assert fourth.extra["first_alert_id"] == third.id
    await r.aclose()


async def test_held_and_published_rules_of_one_item(redis_url: str) -> None:
    """A rule held for corroboration does not appear in the item's message; the other does."""
    r = aclient(redis_url)
    pub = Publisher(r, KEYS)
    out = await pub.publish_story(
        [
            story_alert(base("kursk", "1"), SID, min_sources=2),
            story_alert(base("weapons-aid", "1"), SID),
        ],
        NOW,
    )
    assert [o.status for o in out] == ["held", "new"]
    [msg] = await stream(r)
    assert [h.id for h in msg.rules] == ["weapons-aid"] and msg.rule.id == "weapons-aid"
    await r.aclose()


async def test_plain_alerts_of_one_item_are_one_message(redis_url: str) -> None:
    """Without stories too: one entry per item, each rule's key pointing at it; a rule that
    was published before is left out of a later message for the same item."""
    r = aclient(redis_url)
    pub = Publisher(r, KEYS)
    got = await pub.publish(
        [base("kursk", "1"), base("north-korean-troops", "1"), base("kursk", "2")]
    )
    assert got[0].entry_id == got[1].entry_id != got[2].entry_id
    first, second = await stream(r)
    assert [h.id for h in first.rules] == ["north-korean-troops", "kursk"]
    assert [h.id for h in second.rules] == ["kursk"]
    assert await r.get(KEYS.alert(base("kursk", "1").id)) == got[0].entry_id.encode()
    again = await pub.publish([base("kursk", "1"), base("weapons-aid", "1")])
    assert again[0].entry_id is None and again[1].entry_id is not None
    third = (await stream(r))[2]
    assert [h.id for h in third.rules] == ["weapons-aid"]
    await r.aclose()


def test_version_1_messages_are_still_read() -> None:
    """A v1 message (no ``rules``) reads as one rule; ``hits`` gives it as one."""
    d = base("kursk", "1").to_dict()
    d["v"] = 1
    alert = Alert.from_dict(d)
    assert alert.rules == () and [h.id for h in alert.hits] == ["kursk"]
    assert alert.for_notifier("slack") is alert and alert.for_notifier("mail") is None
