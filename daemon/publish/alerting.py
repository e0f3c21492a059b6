"""From matches to published alerts: ``build_alert``, and stories — every new item joins a
story, and alerts are per (rule, story); the alerts one item raises for several rules go out
as one message (``daemon.publish.stream``), so a notifier gets one message per item.

``Poller._poll`` calls ``StoryStage.assign`` for **every new item** of a poll, before matching,
alertable or not. Items recorded as seen without alerting (outside ``backfill`` on a feed's
first poll, or while re-baselining after Redis lost its state) still join and start stories,
so the story's ``sources`` say which feeds carried it and corroboration counts them. No alert
was published for them, so the next matching item of such a story raises the rule's *first*
alert for it (``kind: new``): it is new to the reader.

``StoryStage.publish`` then turns each (rule, alertable item) match into a ``StoryAlert``
(``daemon.publish.stream``): the story's first alert for the rule (id from rule and story) or a
follow-up (``kind: update``, id from rule, story and item, ``first_alert_id``), decided in
Redis when published. Choices:

* **Corroboration** (``min_sources: N``, ``within``): a match of a story that fewer than N
  feeds carried within ``within`` publishes nothing; the first such match is *held* in Redis
  (``{p}:story:held:<story>``, for ``within``). When a later item of the story makes N, the
  rule's first alert is published: that item's own if it matches the rule too, otherwise the
  held match (with its explanation; ``created`` is the release time) — so a second outlet
  that words the claim differently still confirms it. Only alertable items release.
  Every feed carrying the story counts, whatever the rule's ``feeds``.
* **Throttle** (``throttle``): at most one first alert per rule per window; the ones held
  back are counted and the rule's next first alert carries ``held_back: N``. Follow-ups are
  not throttled. A throttled story can still raise its first alert with a later item.
* **Silences** (``daemon.publish.silence``): a silenced rule's matches and releases are dropped and
  counted (``silenced``), before anything is published or held.

The publish step reads the story's sources in Redis as it decides, so with several processes
the alert lists the feeds of every process's items assigned by then, and ``min_sources``
counts them all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from alerts.wire import Alert, AlertItem, AlertMatch, AlertRule
from daemon.match.matcher import RuleMatch
from daemon.match.rules import Rule
from daemon.parse.excerpt import excerpt
from daemon.publish.silence import Silences
from daemon.publish.stream import (
    Publisher,
    StoryAlert,
    StoryOutcome,
    alert_id,
    plain_outcome,
    released,
    story_alert,
)
from daemon.stories.index import Assigned, StoryEntry, StoryStore, item_key
from daemon.stories.sources import publisher
from daemon.stories.terms import ItemTerms, items_terms
from daemon.types import Item


@dataclass(slots=True)
class StoryResult:
    """What ``StoryStage.publish`` did: the alerts published (new and follow-ups), and how
    many matches were held (``min_sources``), throttled, silenced."""

    published: list[StoryOutcome] = field(default_factory=list)
    held: int = 0
    throttled: int = 0
    silenced: int = 0


def build_alert(
    rm: RuleMatch, item: Item, *, now: datetime, default_notify: Sequence[str]
) -> Alert:
    """The alert for a rule matching an item, with its explanation (matches and excerpt)."""
    spans = rm.spans
    first_summary = next((s for s in spans if s.field == "summary"), None)
    if first_summary is not None:
        text = excerpt(item.summary, first_summary.start, first_summary.end)
    else:
        text = excerpt(item.summary, 0, 0) if item.summary else ""
    rule = rm.rule
    return Alert(
        id=alert_id(rule.id, item.feed, item.id),
        rule=AlertRule(id=rule.id, title=rule.title, severity=rule.severity),
        item=AlertItem(
            id=item.id,
            title=item.title,
            link=item.link,
            excerpt=text,
            published=item.published,
            feed=item.feed,
        ),
        matches=tuple(
            AlertMatch(term=s.term, field=s.field, start=s.start, end=s.end) for s in spans
        ),
        created=now,
        notify=tuple(rule.notify) or tuple(default_notify),
    )


async def publish_plain(
    publisher: Publisher, silences: Silences | None, alerts: list[Alert], now: datetime
) -> StoryResult:
    """Without stories: one alert per (rule, feed, item); silences still apply."""
    told = StoryResult()
    if alerts and silences is not None:
        silenced = await silences.active_rules(now.timestamp())
        kept = [a for a in alerts if a.rule.id not in silenced]
        told.silenced, alerts = len(alerts) - len(kept), kept
    for p in await publisher.publish(alerts):
        if p.entry_id:
            told.published.append(plain_outcome(p.alert, p.entry_id))
    return told


TermsOf = Callable[[Sequence[tuple[str, str]]], Awaitable[list[ItemTerms]]]


async def _inline(texts: Sequence[tuple[str, str]]) -> list[ItemTerms]:
    return items_terms(texts)


class StoryStage:
    """``terms``: computes the story terms of (title, text) pairs; the daemon passes its parse
    pool's (``ParsePool.story_terms``: worker processes, off the event loop)."""

    def __init__(
        self,
        store: StoryStore,
        publisher: Publisher,
        silences: Silences | None = None,
        *,
        terms: TermsOf = _inline,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.silences = silences
        self.terms = terms

    async def assign(
        self,
        items: Sequence[Item],
        now: datetime,
        *,
        alertable: Sequence[Item] = (),
        publisher_of: str | None = None,
    ) -> dict[str, Assigned]:
        """The story of each item (by item id); call it with every new item of a poll.

        An item published longer than the story window ago joins no story (its story, if it
        had one, is forgotten) unless it is ``alertable`` (``backfill: all``)."""
        keep = {i.id for i in alertable}
        oldest = now.timestamp() - self.store.window
        todo = [
            i
            for i in items
            if i.id in keep or i.published is None or i.published.timestamp() > oldest
        ]
        if not todo:
            return {}
        found = await self.terms([(i.title, i.summary) for i in todo])
        entries = [
            StoryEntry(
                item_key(i.feed, i.id),
                t,
                publisher(publisher_of, i.link, i.feed, source_url=i.source_url),
                i.link,
            )
            for i, t in zip(todo, found, strict=True)
        ]
        got = await self.store.assign_many(entries, now.timestamp())
        return {i.id: a for i, a in zip(todo, got, strict=True)}

    async def publish(
        self,
        matches: Sequence[tuple[Alert, Rule]],
        alertable: Sequence[Item],
        stories: dict[str, Assigned],
        rule_by_id: Callable[[str], Rule | None],
        now: datetime,
    ) -> StoryResult:
        """Publish the alerts for ``matches`` (an alert built for a rule and an alertable
        item, with the rule) and release the held matches that ``alertable`` items
        corroborate."""
        candidates: list[StoryAlert] = []
        for base, rule in matches:
            spec, story = rule.spec, stories[base.item.id]
            candidates.append(
                story_alert(
                    base,
                    story.story_id,
                    min_sources=spec.min_sources,
                    within=spec.within,
                    throttle=spec.throttle,
                )
            )
        candidates += await self._releases(alertable, stories, candidates, rule_by_id, now)
        result = StoryResult()
        if candidates and self.silences is not None:
            silenced = await self.silences.active_rules(now.timestamp())
            kept = [c for c in candidates if c.rule_id not in silenced]
            result.silenced = len(candidates) - len(kept)
            candidates = kept
        for outcome in await self.publisher.publish_story(candidates, now):
            if outcome.status in ("new", "update"):
                result.published.append(outcome)
            elif outcome.status == "held":
                result.held += 1
            elif outcome.status == "throttled":
                result.throttled += 1
        return result

    async def _releases(
        self,
        alertable: Sequence[Item],
        stories: dict[str, Assigned],
        matched: Sequence[StoryAlert],
        rule_by_id: Callable[[str], Rule | None],
        now: datetime,
    ) -> list[StoryAlert]:
        """Held first matches of the stories that alertable items joined (not started)."""
        sids = list(
            dict.fromkeys(
                s.story_id
                for i in alertable
                if (s := stories.get(i.id)) is not None and not s.new_story and len(s.sources) > 1
            )
        )
        if not sids:
            return []
        done = {(c.story_id, c.rule_id) for c in matched}
        out: list[StoryAlert] = []
        for sid, rules in (await self.publisher.held(sids)).items():
            for rule_id, held in rules.items():
                rule = rule_by_id(rule_id)
                if rule is None or not rule.enabled or (sid, rule_id) in done:
                    continue
                spec = rule.spec
                out.append(
                    released(
                        held,
                        sid,
                        now=now,
                        min_sources=spec.min_sources,
                        within=spec.within,
                        throttle=spec.throttle,
                    )
                )
        return out


def rule_finder(rules: Sequence[Rule]) -> Callable[[str], Rule | None]:
    """Rule by id (None if there is none), for ``StoryStage.publish``."""
    return {r.id: r for r in rules}.get
