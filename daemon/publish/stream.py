"""Publishing alerts to the Redis Stream, idempotently: one message per item and notifier.

One Lua script per poll (one round trip per feed). Plain alerts (``publish``): for each,
``SET {p}:alert:<id> NX EX ttl``; the id is derived from (rule, feed, item). Story alerts
(``publish_story``): the script decides per (rule, story) whether an item raises the story's
first alert (id from rule and story) or a follow-up (id from rule, story and item), holds it
(``min_sources``), or throttles it, and adds the story's current ``sources`` to the JSON.
Either way a poll repeated after a crash — between publishing and recording the items as
seen — publishes nothing twice: the alert keys, not the seen-memory, are the correctness
guarantee (Alertmanager's notification log plays this role).

**One message per item.** The alerts one item raises for several rules go out as one stream
entry (``XADD MAXLEN ~ n``): the lead rule's alert (the first new one, highest severity first)
with every rule's ``RuleHit`` in ``rules`` (``alerts/wire.py``), so each notifier gets one
message naming the rules routed to it (``Alert.for_notifier``). The message's id is the lead
alert's; every rule's alert key points at it, and a rule's later follow-ups name it as
``first_alert_id``, so they reply to the message that actually went out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

import redis.asyncio as aioredis

from alerts.wire import Alert, RuleHit, severity_rank
from daemon.errors import StoreError
from daemon.redis.errors import STORE_ERRORS
from daemon.redis.keys import Keys
from daemon.stories.lua import BLOCK, RECORD, SOURCES_LUA

ALERT_KEY_TTL = 30 * 86400

# ARGV: maxlen, ttl, then per alert: group, JSON, rule hit JSON (alerts of one group adjacent).
_PUBLISH = """
local out, members, group = {}, {}, nil
local function flush()
  if #members == 0 then return end
  local frags = {}
  for j, m in ipairs(members) do frags[j] = ARGV[m * 3 + 5] end
  local payload = string.sub(ARGV[members[1] * 3 + 4], 1, -2)
    .. ',"rules":[' .. table.concat(frags, ',') .. ']}'
  local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'data', payload)
  for _, m in ipairs(members) do
    redis.call('SET', KEYS[m + 2], id, 'XX', 'KEEPTTL')
    out[m + 1] = id
  end
  members = {}
end
for i = 0, #KEYS - 2 do
  if ARGV[i * 3 + 3] ~= group then flush(); group = ARGV[i * 3 + 3] end
  if redis.call('SET', KEYS[i + 2], '1', 'NX', 'EX', ARGV[2]) then
    members[#members + 1] = i
  end
  out[i + 1] = ''
end
flush()
return out
"""


def alert_id(rule_id: str, feed: str, item_id: str) -> str:
    """Deterministic alert id for (rule, feed, item)."""
    digest = hashlib.sha256(f"{rule_id}\0{feed}\0{item_id}".encode()).hexdigest()
    return digest[:24]


@dataclass(frozen=True, slots=True)
class Published:
    alert: Alert
    entry_id: str | None  # stream entry id; None when the alert had been published before


class Publisher:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        stream_maxlen: int = 100_000,
        alert_ttl: int = ALERT_KEY_TTL,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.stream_maxlen = stream_maxlen
        self.alert_ttl = alert_ttl
        self._script = redis.register_script(_PUBLISH)
        self._story_script = redis.register_script(_PUBLISH_STORY)

    async def publish(self, alerts: Sequence[Alert]) -> list[Published]:
        """Publish every alert not published before, in one round trip: the alerts of one
        item (feed and item id) as one message, its rules highest severity first."""
        if not alerts:
            return []
        order = _grouped(alerts, lambda a: (a.item.feed, a.item.id), lambda a: a.rule.severity)
        keys = [self.keys.alerts, *(self.keys.alert(alerts[i].id) for _, i in order)]
        args: list[str | int] = [self.stream_maxlen, self.alert_ttl]
        for group, i in order:
            a = alerts[i]
            args += [group, _without_rules(a).to_json(), _hit(a, a.kind, a.id).to_json()]
        try:
            ids = await self._script(keys=keys, args=args)
        except STORE_ERRORS as e:
            raise StoreError(f"cannot publish {len(alerts)} alert(s): {e}") from e
        entry: dict[int, str | None] = {
            i: (raw.decode() if isinstance(raw, bytes) else str(raw)) or None
            for (_, i), raw in zip(order, ids, strict=True)
        }
        return [Published(alert=a, entry_id=entry[i]) for i, a in enumerate(alerts)]

    async def publish_story(
        self, candidates: Sequence[StoryAlert], now: datetime
    ) -> list[StoryOutcome]:
        """Publish each candidate as its story's first alert for the rule, or as a follow-up,
        or hold or throttle it; in one Lua step (one round trip), so that two processes with
        items of one story publish one first alert between them.

        In order, per candidate: done before for this item → ``dup``. The rule's first alert
        for the story exists → a follow-up (a release: nothing). Fewer than ``min_sources``
        feeds carried the story within ``within`` → ``held`` (the first held match is kept
        for ``within``). The rule alerted less than ``throttle`` ago → ``throttled`` (counted).
        Otherwise the first alert, with ``held_back`` if the throttle held any back.

        The candidates of one item (story, feed, item id) that publish go out as one message
        (see the module docstring); their outcomes share its entry id."""
        if not candidates:
            return []
        order = _grouped(
            candidates,
            lambda c: (c.story_id, c.new.item.feed, c.new.item.id),
            lambda c: c.new.rule.severity,
        )
        keys = [self.keys.alerts]
        args: list[str | int | float] = [self.stream_maxlen, self.alert_ttl, _epoch(now)]
        args += [len(candidates), self.keys.tag]
        for group, i in order:
            c = candidates[i]
            rule = c.rule_id
            keys += [
                self.keys.alert(c.new.id), self.keys.alert(c.handled),
                self.keys.story_held(c.story_id), self.keys.throttle(rule),
                self.keys.throttle_held(rule),
                self.keys.story_record(c.story_id, BLOCK, RECORD)[0],
            ]  # fmt: skip
            new = _without_rules(c.new)
            update = _without_rules(c.update) if c.update is not None else None
            args += [
                "match" if update is not None else "release", rule, c.min_sources, c.within,
                c.throttle, new.item.feed, new.to_json(),
                update.to_json() if update is not None else "",
                json.dumps(new.item.title, ensure_ascii=False), c.story_id,
                group, new.id, c.handled, _hit(new, "new", new.id).to_json(),
                _hit(update, "update", c.handled).to_json() if update is not None else "",
            ]  # fmt: skip
        try:
            raw = await self._story_script(keys=keys, args=args)
        except STORE_ERRORS as e:
            raise StoreError(f"cannot publish {len(candidates)} story alert(s): {e}") from e
        got = {i: r for (_, i), r in zip(order, raw, strict=True)}
        return [_outcome(c, got[i]) for i, c in enumerate(candidates)]

    async def held(self, story_ids: Sequence[str]) -> dict[str, dict[str, bytes]]:
        """The held first matches of these stories: story id → rule id → alert JSON."""
        if not story_ids:
            return {}
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for sid in story_ids:
                    pipe.hgetall(self.keys.story_held(sid))
                rows = await pipe.execute()
        except STORE_ERRORS as e:
            raise StoreError(f"cannot read held matches: {e}") from e
        return {
            sid: {k.decode(): v for k, v in row.items()}
            for sid, row in zip(story_ids, rows, strict=True)
            if row
        }


# -- stories: one alert per (rule, story), follow-ups, corroboration, throttle -----------------

_PUBLISH_STORY = (
    SOURCES_LUA
    + """
local maxlen, ttl, nowstr = ARGV[1], ARGV[2], ARGV[3]
local now, n, tag = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local function sources(sid, feed, within)
  local names, count = {}, 0
  local r = story_read(tag, sid)
  if r then
    local found, times = story_sources(tag, r)
    for i = 1, #found do
      names[i] = found[i]
      if now - times[i] <= within then count = count + 1 end
    end
  end
  if #names == 0 then names, count = {feed}, 1 end
  return names, count
end
local function add(json, more) return string.sub(json, 1, -2) .. more .. '}' end
local function with_sources(json, names)
  local quoted = {}
  for i, name in ipairs(names) do quoted[i] = '"' .. name .. '"' end
  return add(json, ',"sources":[' .. table.concat(quoted, ',') .. '],"source_count":' .. #names)
end
local out, members, group = {}, {}, nil
-- One message for the members of a group (one item): the lead's alert (the first new one,
-- else the first) with every member's rule hit; each member's keys then point at it.
local function flush()
  if #members == 0 then return end
  local lead = members[1]
  for _, m in ipairs(members) do
    if m.status == 'new' then lead = m; break end
  end
  local hits = {}
  for j, m in ipairs(members) do hits[j] = m.hit end
  local payload = add(lead.payload, ',"rules":[' .. table.concat(hits, ',') .. ']')
  local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'data', payload)
  for _, m in ipairs(members) do
    redis.call('SET', m.khandled, id, 'EX', ttl)
    if m.status == 'new' then
      redis.call('SET', m.knew, id .. '\t' .. lead.alert_id .. '\t' .. m.title, 'EX', ttl)
    end
    out[m.index] = {m.status, id, m.csv, m.held, m.first}
  end
  members = {}
end
for i = 0, n - 1 do
  local k, a = 1 + i * 6, 5 + i * 15
  local knew, khandled, kheld = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local kthr, kthrn = KEYS[k + 4], KEYS[k + 5]
  local mode, rule, min_src = ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  local within, throttle, feed = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), ARGV[a + 6]
  local new_json, upd_json, title = ARGV[a + 7], ARGV[a + 8], ARGV[a + 9]
  local grp, new_id, upd_id = ARGV[a + 11], ARGV[a + 12], ARGV[a + 13]
  local new_hit, upd_hit = ARGV[a + 14], ARGV[a + 15]
  if grp ~= group then flush(); group = grp end
  local names, count = sources(ARGV[a + 10], feed, within)
  local csv = table.concat(names, ',')
  if redis.call('EXISTS', khandled) == 1 then
    out[i + 1] = {'dup', '', csv, '0', ''}
  elseif redis.call('EXISTS', knew) == 1 then
    redis.call('HDEL', kheld, rule)
    if mode == 'match' then
      -- '<entry> TAB <message id> TAB <title JSON>'; before version 2: '<entry> TAB <title>'
      local v = redis.call('GET', knew)
      local first, ftitle = string.match(v, '^[^\t]*\t([0-9a-f]+)\t(.*)$')
      if not first then first, ftitle = new_id, (string.match(v, '\t(.*)$') or 'null') end
      local more = ',"first_alert_id":"' .. first .. '","first_title":' .. ftitle
      members[#members + 1] = {
        index = i + 1, status = 'update', alert_id = upd_id, knew = knew, khandled = khandled,
        payload = add(with_sources(upd_json, names), more), hit = add(upd_hit, more),
        csv = csv, held = '0', first = first, title = title,
      }
    else
      out[i + 1] = {'dup', '', csv, '0', ''}
    end
  elseif count < min_src then
    if mode == 'match' then
      redis.call('HSETNX', kheld, rule, new_json)
      if redis.call('TTL', kheld) < within then
        redis.call('EXPIRE', kheld, math.ceil(within) + 60)
      end
    end
    out[i + 1] = {'held', '', csv, '0', ''}
  else
    local last = throttle > 0 and redis.call('GET', kthr)
    if last and now - tonumber(last) < throttle then
      redis.call('INCR', kthrn)
      redis.call('EXPIRE', kthrn, ttl)
      redis.call('SET', khandled, 'throttled', 'EX', ttl)
      redis.call('HDEL', kheld, rule)
      out[i + 1] = {'throttled', '', csv, '0', ''}
    else
      local held = 0
      if throttle > 0 then
        redis.call('SET', kthr, nowstr, 'EX', math.ceil(throttle) + 60)
        held = tonumber(redis.call('GET', kthrn) or '0')
        redis.call('DEL', kthrn)
      end
      local payload, hit = with_sources(new_json, names), new_hit
      if held > 0 then
        payload = add(payload, ',"held_back":' .. held)
        hit = add(hit, ',"held_back":' .. held)
      end
      redis.call('HDEL', kheld, rule)
      members[#members + 1] = {
        index = i + 1, status = 'new', alert_id = new_id, knew = knew, khandled = khandled,
        payload = payload, hit = hit, csv = csv, held = tostring(held), first = '',
        title = title,
      }
    end
  end
end
flush()
return out
"""
)


def story_alert_id(rule_id: str, story_id: str) -> str:
    """The id of a rule's first alert for a story: one per (rule, story)."""
    return hashlib.sha256(f"story\0{rule_id}\0{story_id}".encode()).hexdigest()[:24]


def update_alert_id(rule_id: str, story_id: str, feed: str, item_id: str) -> str:
    """The id of a follow-up: one per (rule, story, item)."""
    digest = hashlib.sha256(f"update\0{rule_id}\0{story_id}\0{feed}\0{item_id}".encode())
    return digest.hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class StoryAlert:
    """A rule's match of an item of a story, ready for ``Publisher.publish_story``.

    ``new``: the alert as the story's first for the rule; ``update``: as a follow-up (None for
    a *release*: a held first match published because corroboration arrived). ``min_sources``,
    ``within``, ``throttle``: the rule's keys (seconds). ``handled``: the follow-up id of the
    item, marking it done for (rule, story) whichever way it went.
    """

    story_id: str
    new: Alert
    update: Alert | None
    handled: str
    min_sources: int = 1
    within: float = 6 * 3600.0
    throttle: float = 0.0

    @property
    def rule_id(self) -> str:
        return self.new.rule.id


def story_alert(
    base: Alert, story_id: str, *, min_sources: int = 1, within: float = 6 * 3600.0,
    throttle: float = 0.0,
) -> StoryAlert:  # fmt: skip
    """The two forms of ``base`` (an alert built for a rule and an item) in a story.

    ``sources``, ``source_count`` (and ``held_back``, ``first_title``) are added when it is
    published, from the story as it is then."""
    rule, item = base.rule.id, base.item
    handled = update_alert_id(rule, story_id, item.feed, item.id)
    new = replace(base, id=story_alert_id(rule, story_id), extra={"story_id": story_id})
    # ``first_alert_id``: added when published (the message that carried the first alert).
    update = replace(base, id=handled, kind="update", extra={"story_id": story_id})
    return StoryAlert(story_id, new, update, handled, min_sources, within, throttle)


def released(
    held: str | bytes, story_id: str, *, now: datetime, min_sources: int, within: float,
    throttle: float = 0.0,
) -> StoryAlert:  # fmt: skip
    """A held first match (``Publisher.held``), to publish now that the story may be
    corroborated: the same alert, created now."""
    alert = replace(Alert.from_json(held), created=now)
    handled = update_alert_id(alert.rule.id, story_id, alert.item.feed, alert.item.id)
    return StoryAlert(story_id, alert, None, handled, min_sources, within, throttle)


@dataclass(frozen=True, slots=True)
class StoryOutcome:
    """What ``publish_story`` did with one ``StoryAlert``: ``status`` is ``new`` or ``update``
    (published: ``alert`` as sent, ``entry_id``), ``held`` (``min_sources`` not reached),
    ``throttled`` (counted for the rule's next alert) or ``dup`` (done before)."""

    candidate: StoryAlert
    status: str
    alert: Alert | None = None
    entry_id: str | None = None


def _epoch(now: datetime) -> str:
    return f"{now.timestamp():.3f}"


def _outcome(c: StoryAlert, raw: list[bytes]) -> StoryOutcome:
    status, entry, csv, held, first = (x.decode() for x in raw)
    if status not in ("new", "update"):
        return StoryOutcome(c, status)
    base = c.new if status == "new" else c.update
    assert base is not None
    sources = csv.split(",") if csv else []
    extra = {**base.extra, "sources": sources, "source_count": len(sources)}
    if int(held):
        extra["held_back"] = int(held)
    if first:
        extra["first_alert_id"] = first
    return StoryOutcome(c, status, replace(base, extra=extra), entry)


T = TypeVar("T")


def _grouped(
    things: Sequence[T], group: Callable[[T], tuple[str, ...]], severity: Callable[[T], str]
) -> list[tuple[str, int]]:
    """(group number, index) of each of ``things``: groups adjacent, in order of first
    appearance, and within a group highest severity first (stable)."""
    first: dict[tuple[str, ...], int] = {}
    for t in things:
        first.setdefault(group(t), len(first))
    keyed = sorted(
        range(len(things)),
        key=lambda i: (first[group(things[i])], -severity_rank(severity(things[i])), i),
    )
    return [(str(first[group(things[i])]), i) for i in keyed]


def _without_rules(alert: Alert) -> Alert:
    """The alert as one rule's: the publisher adds the message's ``rules`` itself."""
    return replace(alert, rules=()) if alert.rules else alert


def _hit(alert: Alert, kind: str, alert_id: str) -> RuleHit:
    """The rule hit ``alert`` contributes to a message (``first_*`` and ``held_back`` are
    added by the publisher's Lua step)."""
    r = alert.rule
    return RuleHit(
        id=r.id,
        title=r.title,
        severity=r.severity,
        notify=alert.notify,
        kind=kind,
        alert_id=alert_id,
        matches=alert.matches,
    )


def plain_outcome(alert: Alert, entry_id: str) -> StoryOutcome:
    """A plain alert (no story) published as ``entry_id``, in the shape of a story outcome."""
    return StoryOutcome(StoryAlert("", alert, None, alert.id), "new", alert, entry_id)
