"""Dead letters: list, show, replay (to the failed notifier only), drop, formatting."""

from __future__ import annotations

import asyncio
import json

import redis.asyncio as aioredis

from alerts.consumer import Consumer
from alerts.dlq import dlq_drop, dlq_list, dlq_replay, dlq_show, format_dead_letters
from alerts.testing import FailingNotifier, RecordingNotifier
from alerts.wire import Alert
from tests.delivery.helpers import KEYS, NOW, dispatcher, make_alert, running, runtimes, settings


async def dead_letter_two(r: aioredis.Redis) -> tuple[RecordingNotifier, FailingNotifier]:
    """alert-1 and alert-2 routed to 'rec' (works) and 'mail' (fails permanently twice)."""
    rec = RecordingNotifier("rec")
    mail = FailingNotifier(
        "mail", FailingNotifier.Options(fail_times=2, recoverable=False, reason="auth")
    )
    d = dispatcher(r, runtimes(rec, mail))
    for n in (1, 2):
        out = await d.deliver(f"{n}-0", make_alert(n, ["rec", "mail"]))
        assert out.dead == ("mail",)
    return rec, mail


async def test_list_and_show(r: aioredis.Redis) -> None:
    """list gives one summary per failed (alert, notifier); show returns the full alert."""
    await dead_letter_two(r)
    items = await dlq_list(r, KEYS)
    assert [(i.alert_id, i.rule_id, i.notifier, i.reason, i.attempts) for i in items] == [
        ("alert-1", "kursk", "mail", "auth", 1),
        ("alert-2", "kursk", "mail", "auth", 1),
    ]
    assert items[0].title == "Troops advance near Sudzha (1)" and items[0].failed_at == NOW
    shown = await dlq_show(r, KEYS, items[1].id)
    assert shown is not None and shown.alert == make_alert(2, ["rec", "mail"])
    assert await dlq_show(r, KEYS, "1-1") is None
    assert await dlq_show(r, KEYS, "not-an-id") is None
    assert len(await dlq_list(r, KEYS, count=1)) == 1


async def test_replay_goes_to_the_failed_notifier_only(r: aioredis.Redis) -> None:
    """A replayed alert reaches the notifier that failed; the one that delivered is not resent."""
    rec, mail = await dead_letter_two(r)
    first = (await dlq_list(r, KEYS))[0]
    assert await dlq_replay(r, KEYS, [first.id]) == 1
    assert [i.alert_id for i in await dlq_list(r, KEYS)] == ["alert-2"]
    [(entry_id, fields)] = await r.xrange(KEYS.alerts)
    assert Alert.from_json(fields[b"data"]).notify == ("mail",)
    s = settings()
    c = Consumer(r, KEYS, dispatcher(r, runtimes(rec, mail), s), s, name="c1")
    async with running(c):
        async with asyncio.timeout(5):
            await c.drain(until_ids=[entry_id.decode()])
    assert [a.id for a in mail.sent] == ["alert-1"]
    assert sorted(a.id for a in rec.sent) == ["alert-1", "alert-2"]  # once each, from before
    assert await r.smembers(KEYS.delivered("alert-1")) == {b"rec", b"mail"}


async def test_replay_all_clears_the_attempt_count(r: aioredis.Redis) -> None:
    """Replaying everything empties the dead stream and resets the failed pairs' attempts."""
    await dead_letter_two(r)
    assert await dlq_replay(r, KEYS) == 2
    assert await r.xlen(KEYS.dead) == 0 and await r.xlen(KEYS.alerts) == 2
    assert await r.hgetall(KEYS.attempts("alert-1")) == {b"rec": b"1"}


async def test_replay_skips_undecodable_and_unknown(r: aioredis.Redis) -> None:
    """Undecodable dead letters stay put; unknown ids are ignored."""
    d = dispatcher(r, {})
    await d.dead_letter(
        source_id="1-0",
        data=b"{oops",
        notifier="",
        attempts=0,
        error="undecodable",
        reason="decode",
    )
    assert await dlq_replay(r, KEYS) == 0
    assert await dlq_replay(r, KEYS, ["99-9"]) == 0
    assert await r.xlen(KEYS.dead) == 1 and await r.xlen(KEYS.alerts) == 0
    [item] = await dlq_list(r, KEYS)
    assert item.alert is None and not item.replayable and item.data == "{oops"


async def test_drop(r: aioredis.Redis) -> None:
    """drop deletes the given dead letters and says how many existed."""
    await dead_letter_two(r)
    items = await dlq_list(r, KEYS)
    assert await dlq_drop(r, KEYS, [items[0].id, "99-9", "junk"]) == 1
    assert [i.id for i in await dlq_list(r, KEYS)] == [items[1].id]
    assert await dlq_drop(r, KEYS, []) == 0


async def test_format_table_and_json(r: aioredis.Redis) -> None:
    """The table has a header and one row per item; JSON is one parseable object per line."""
    await dead_letter_two(r)
    items = await dlq_list(r, KEYS)
    table = format_dead_letters(items, as_json=False).splitlines()
    assert table[0].split() == [
        "ID",
        "FAILED_AT",
        "NOTIFIER",
        "REASON",
        "ATTEMPTS",
        "RULE",
        "TITLE",
        "ERROR",
    ]
    assert len(table) == 3 and "mail" in table[1] and "auth" in table[1]
    rows = [json.loads(line) for line in format_dead_letters(items, as_json=True).splitlines()]
    assert rows[0]["alert_id"] == "alert-1" and rows[0]["notifier"] == "mail"
    assert rows[0]["failed_at"] == NOW.isoformat() and rows[0]["error"] == "simulated failure 1"
    assert format_dead_letters([], as_json=False) == "no dead letters"
    assert format_dead_letters([], as_json=True) == ""
    [full] = format_dead_letters(items[:1], as_json=True, full=True).splitlines()
    assert json.loads(full)["alert"]["item"]["id"] == "item-1"
