"""Publishing alerts to the Redis Stream, idempotently.

One Lua script per poll (one round trip per feed). Plain alerts (``publish``): for each,
``SET {p}:alert:<id> NX EX ttl`` and, only if that succeeded, ``XADD {p}:alerts MAXLEN ~ n``;
the id is derived from (rule, feed, item). Story alerts (``publish_story``): the script
decides per (rule, story) whether an item raises the story's first alert (id from rule and
story) or a follow-up (id from rule, story and item), holds it (``min_sources``), or
throttles it, and adds the story's current ``sources`` to the JSON. Either way a poll
repeated after a crash — between publishing and recording the items as seen — publishes
nothing twice: the alert keys, not the seen-memory, are the correctness guarantee
(Alertmanager's notification log plays this role).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import redis.asyncio as aioredis

from alerts.wire import Alert
from daemon.errors import StoreError
from daemon.redis.errors import STORE_ERRORS
from daemon.redis.keys import Keys
from daemon.stories.lua import BLOCK, RECORD, SOURCES_LUA

ALERT_KEY_TTL = 30 * 86400

_PUBLISH = """
local out = {}
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[2]) then
    local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'data', ARGV[i + 1])
    redis.call('SET', KEYS[i], id, 'XX', 'KEEPTTL')
    out[#out + 1] = id
  else
    out[#out + 1] = ''
  end
end
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
        """Publish every alert not published before, in one round trip."""
        if not alerts:
            return []
        keys = [self.keys.alerts, *(self.keys.alert(a.id) for a in alerts)]
        args: list[str | int] = [self.stream_maxlen, self.alert_ttl, *(a.to_json() for a in alerts)]
        try:
            ids = await self._script(keys=keys, args=args)
        except STORE_ERRORS as e:
            raise StoreError(f"cannot publish {len(alerts)} alert(s): {e}") from e
        return [
            Published(alert=a, entry_id=(i.decode() if isinstance(i, bytes) else str(i)) or None)
            for a, i in zip(alerts, ids, strict=True)
        ]

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
        Otherwise the first alert, with ``held_back`` if the throttle held any back."""
        if not candidates:
            return []
        keys = [self.keys.alerts]
        args: list[str | int | float] = [self.stream_maxlen, self.alert_ttl, _epoch(now)]
        args += [len(candidates), self.keys.tag]
        for c in candidates:
            rule = c.rule_id
            keys += [
                self.keys.alert(c.new.id), self.keys.alert(c.handled),
                self.keys.story_held(c.story_id), self.keys.throttle(rule),
                self.keys.throttle_held(rule),
                self.keys.story_record(c.story_id, BLOCK, RECORD)[0],
            ]  # fmt: skip
            args += [
                "match" if c.update is not None else "release", rule, c.min_sources, c.within,
                c.throttle, c.new.item.feed, c.new.to_json(),
                c.update.to_json() if c.update is not None else "",
                json.dumps(c.new.item.title, ensure_ascii=False), c.story_id,
            ]  # fmt: skip
        try:
            raw = await self._story_script(keys=keys, args=args)
        except STORE_ERRORS as e:
            raise StoreError(f"cannot publish {len(candidates)} story alert(s): {e}") from e
        return [_outcome(c, r) for c, r in zip(candidates, raw, strict=True)]

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
local function xadd(payload)
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'data', payload)
end
local out = {}
for i = 0, n - 1 do
  local k, a = 1 + i * 6, 5 + i * 10
  local knew, khandled, kheld = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local kthr, kthrn = KEYS[k + 4], KEYS[k + 5]
  local mode, rule, min_src = ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  local within, throttle, feed = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), ARGV[a + 6]
  local new_json, upd_json, title = ARGV[a + 7], ARGV[a + 8], ARGV[a + 9]
  local names, count = sources(ARGV[a + 10], feed, within)
  local csv = table.concat(names, ',')
  if redis.call('EXISTS', khandled) == 1 then
    out[#out + 1] = {'dup', '', csv, '0'}
  elseif redis.call('EXISTS', knew) == 1 then
    redis.call('HDEL', kheld, rule)
    if mode == 'match' then
      local first = string.match(redis.call('GET', knew), '\\t(.*)$') or 'null'
      local id = xadd(add(with_sources(upd_json, names), ',"first_title":' .. first))
      redis.call('SET', khandled, id, 'EX', ttl)
      out[#out + 1] = {'update', id, csv, '0'}
    else
      out[#out + 1] = {'dup', '', csv, '0'}
    end
  elseif count < min_src then
    if mode == 'match' then
      redis.call('HSETNX', kheld, rule, new_json)
      if redis.call('TTL', kheld) < within then
        redis.call('EXPIRE', kheld, math.ceil(within) + 60)
      end
    end
    out[#out + 1] = {'held', '', csv, '0'}
  else
    local last = throttle > 0 and redis.call('GET', kthr)
    if last and now - tonumber(last) < throttle then
      redis.call('INCR', kthrn)
      redis.call('EXPIRE', kthrn, ttl)
      redis.call('SET', khandled, 'throttled', 'EX', ttl)
      redis.call('HDEL', kheld, rule)
      out[#out + 1] = {'throttled', '', csv, '0'}
    else
      local held = 0
      if throttle > 0 then
        redis.call('SET', kthr, nowstr, 'EX', math.ceil(throttle) + 60)
        held = tonumber(redis.call('GET', kthrn) or '0')
        redis.call('DEL', kthrn)
      end
      local payload = with_sources(new_json, names)
      if held > 0 then payload = add(payload, ',"held_back":' .. held) end
      local id = xadd(payload)
      redis.call('SET', knew, id .. '\\t' .. title, 'EX', ttl)
      redis.call('SET', khandled, id, 'EX', ttl)
      redis.call('HDEL', kheld, rule)
      out[#out + 1] = {'new', id, csv, tostring(held)}
    end
  end
end
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
    update = replace(
        base,
        id=handled,
        kind="update",
        extra={"story_id": story_id, "first_alert_id": new.id},
    )
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
    status, entry, csv, held = (x.decode() for x in raw)
    if status not in ("new", "update"):
        return StoryOutcome(c, status)
    base = c.new if status == "new" else c.update
    assert base is not None
    sources = csv.split(",") if csv else []
    extra = {**base.extra, "sources": sources, "source_count": len(sources)}
    if int(held):
        extra["held_back"] = int(held)
    return StoryOutcome(c, status, replace(base, extra=extra), entry)


def plain_outcome(alert: Alert, entry_id: str) -> StoryOutcome:
    """A plain alert (no story) published as ``entry_id``, in the shape of a story outcome."""
    return StoryOutcome(StoryAlert("", alert, None, alert.id), "new", alert, entry_id)
