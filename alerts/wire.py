"""The alert wire format, version 2: what travels through the Redis Stream to notifiers.

Notifiers depend only on this module. The JSON form is documented in ``alerts/README.md``;
``Alert.to_json`` / ``Alert.from_json`` are its writer and reader (the publisher's Lua step
assembles a message from ``to_json`` pieces). Unknown keys are ignored when reading, so newer
producers can add fields without breaking older consumers; version 1 messages are still read.

Version 2 added ``rules``: one message per item of a story carries every rule it raised an
alert for (highest severity first). A notifier sees only the rules routed to it
(``Alert.for_notifier``), so one story matching three rules is one message per notifier.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

WIRE_VERSION = 2
READABLE_VERSIONS = (1, 2)
SEVERITIES = ("info", "low", "medium", "high", "critical")


def severity_rank(severity: str) -> int:
    """0 for ``info`` … 4 for ``critical``; unknown severities rank as ``info``."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        return 0


@dataclass(frozen=True, slots=True)
class AlertRule:
    id: str
    title: str
    severity: str


@dataclass(frozen=True, slots=True)
class AlertItem:
    id: str
    title: str
    link: str | None
    excerpt: str
    published: datetime | None
    feed: str


@dataclass(frozen=True, slots=True)
class AlertMatch:
    """A matched term: character offsets into the plain text of ``field`` (title, summary…)."""

    term: str
    field: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class RuleHit:
    """One rule a message is for (``Alert.rules``): the rule, where its alert goes, and what the
    alert is for that rule: its id (``alert_id``: the message carries the alerts of several
    rules), ``kind`` (``new`` or ``update``), the matched terms; for an update, the id of the
    message that carried the rule's first alert of the story and that item's title; for a new
    alert, how many first alerts its throttle held back."""

    id: str
    title: str
    severity: str
    notify: tuple[str, ...]
    kind: str
    alert_id: str
    matches: tuple[AlertMatch, ...] = ()
    first_alert_id: str | None = None
    first_title: str | None = None
    held_back: int = 0

    @property
    def rule(self) -> AlertRule:
        return AlertRule(id=self.id, title=self.title, severity=self.severity)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "id": self.id,
            "title": self.title,
            "severity": self.severity,
            "notify": list(self.notify),
            "kind": self.kind,
            "alert_id": self.alert_id,
            "matches": [_match_dict(m) for m in self.matches],
        }
        return {**d, **self.story_fields()}

    def story_fields(self) -> dict[str, Any]:
        """``first_alert_id``, ``first_title`` and ``held_back``, those that are set."""
        fields = {"first_alert_id": self.first_alert_id, "first_title": self.first_title}
        out: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
        if self.held_back:
            out["held_back"] = self.held_back
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RuleHit:
        first, first_title = d.get("first_alert_id"), d.get("first_title")
        return cls(
            id=str(d["id"]),
            title=str(d["title"]),
            severity=str(d["severity"]),
            notify=tuple(str(n) for n in d.get("notify", ())),
            kind=str(d.get("kind", "new")),
            alert_id=str(d["alert_id"]),
            matches=tuple(_match(m) for m in d.get("matches", ())),
            first_alert_id=str(first) if first is not None else None,
            first_title=str(first_title) if first_title is not None else None,
            held_back=int(d.get("held_back", 0)),
        )


def _match_dict(m: AlertMatch) -> dict[str, Any]:
    return {"term": m.term, "field": m.field, "start": m.start, "end": m.end}


def _match(m: dict[str, Any]) -> AlertMatch:
    return AlertMatch(
        term=str(m["term"]), field=str(m["field"]), start=int(m["start"]), end=int(m["end"])
    )


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: a rule matched an item.

    ``id`` is deterministic (rule and story, or rule, story and item for a follow-up), so
    publishing the same match twice is one alert. ``notify`` names the notifier instances this
    alert is routed to. ``kind`` is ``new`` (the rule's first alert for a story) or ``update``
    (a follow-up: a later item of the same story). Story fields (``story_id``, ``sources``,
    ``source_count``, ``first_alert_id``, ``first_title``, ``held_back``) travel in ``extra``.

    ``rules``: every rule this message is for, highest severity first (empty: just ``rule``).
    ``rule``, ``kind`` and ``matches`` then describe the message as a whole: the first ``new``
    rule (else the first rule), ``new`` if any rule's alert is new, every rule's matches; and
    ``notify`` is every notifier any of them is routed to. ``for_notifier`` gives the message
    as one notifier should see it.
    """

    id: str
    rule: AlertRule
    item: AlertItem
    matches: tuple[AlertMatch, ...]
    created: datetime
    notify: tuple[str, ...] = ()
    kind: str = "new"
    extra: dict[str, Any] = field(default_factory=dict)
    rules: tuple[RuleHit, ...] = ()

    @property
    def hits(self) -> tuple[RuleHit, ...]:
        """``rules``, or for a message without them its one rule as a hit."""
        if self.rules:
            return self.rules
        first = self.extra.get("first_alert_id")
        return (
            RuleHit(
                id=self.rule.id,
                title=self.rule.title,
                severity=self.rule.severity,
                notify=self.notify,
                kind=self.kind,
                alert_id=self.id,
                matches=self.matches,
                first_alert_id=str(first) if first is not None else None,
            ),
        )

    def for_notifier(self, name: str) -> Alert | None:
        """This message as notifier ``name`` sees it: only the rules routed to it (None if
        none is). Its ``rule`` is the first of them whose alert is new, else the first; its
        ``kind`` is ``new`` if any of them is, and a follow-up replies to the message that
        carried that rule's first alert (``first_alert_id``, ``first_title``)."""
        if not self.rules:
            return self if name in self.notify else None
        routed = tuple(h for h in self.rules if name in h.notify)
        if not routed:
            return None
        return self.regroup(routed)

    def regroup(self, hits: tuple[RuleHit, ...]) -> Alert:
        """The message for these of its rules (see ``for_notifier``)."""
        lead = next((h for h in hits if h.kind == "new"), hits[0])
        extra = {
            k: v
            for k, v in self.extra.items()
            if k not in ("first_alert_id", "first_title", "held_back")
        }
        extra.update(lead.story_fields())
        matches = tuple(dict.fromkeys(m for h in (lead, *hits) for m in h.matches))
        notify = tuple(dict.fromkeys(n for h in hits for n in h.notify))
        return Alert(
            id=self.id,
            rule=lead.rule,
            item=self.item,
            matches=matches,
            created=self.created,
            notify=notify,
            kind=lead.kind,
            extra=extra,
            rules=hits,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": WIRE_VERSION,
            "id": self.id,
            "kind": self.kind,
            "created": self.created.isoformat(),
            "rule": {"id": self.rule.id, "title": self.rule.title, "severity": self.rule.severity},
            "item": {
                "id": self.item.id,
                "title": self.item.title,
                "link": self.item.link,
                "excerpt": self.item.excerpt,
                "published": self.item.published.isoformat() if self.item.published else None,
                "feed": self.item.feed,
            },
            "matches": [_match_dict(m) for m in self.matches],
            "notify": list(self.notify),
            **self.extra,
            **({"rules": [h.to_dict() for h in self.rules]} if self.rules else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Alert:
        v = d.get("v")
        if v not in READABLE_VERSIONS:
            raise ValueError(
                f"unsupported alert wire version {v!r} (this reader knows"
                f" {', '.join(map(str, READABLE_VERSIONS))})"
            )
        known = {"v", "id", "kind", "created", "rule", "item", "matches", "notify", "rules"}
        r, i = d["rule"], d["item"]
        alert = cls(
            id=str(d["id"]),
            kind=str(d.get("kind", "new")),
            created=datetime.fromisoformat(d["created"]),
            rule=AlertRule(id=str(r["id"]), title=str(r["title"]), severity=str(r["severity"])),
            item=AlertItem(
                id=str(i["id"]),
                title=str(i["title"]),
                link=i.get("link"),
                excerpt=str(i.get("excerpt", "")),
                published=datetime.fromisoformat(i["published"]) if i.get("published") else None,
                feed=str(i["feed"]),
            ),
            matches=tuple(_match(m) for m in d.get("matches", ())),
            notify=tuple(str(n) for n in d.get("notify", ())),
            extra={k: v for k, v in d.items() if k not in known},
        )
        hits = tuple(RuleHit.from_dict(h) for h in d.get("rules") or ())
        # The publisher writes the lead rule's message with every rule's hit beside it:
        # derive the message as a whole from its hits (notify, kind, matches, first_*).
        return alert.regroup(hits) if hits else alert

    @classmethod
    def from_json(cls, text: str | bytes) -> Alert:
        return cls.from_dict(json.loads(text))

    def console_dict(self) -> dict[str, Any]:
        """The flat JSON object the console notifier prints with ``format: json``."""
        return {
            "id": self.id,
            "kind": self.kind,
            "rule_id": self.rule.id,
            "rule_title": self.rule.title,
            "severity": self.rule.severity,
            "title": self.item.title,
            "link": self.item.link,
            "feed": self.item.feed,
            "published": self.item.published.isoformat() if self.item.published else None,
            "excerpt": self.item.excerpt,
            "matches": [_match_dict(m) for m in self.matches],
            **self.extra,
            **({"rules": [h.id for h in self.rules]} if self.rules else {}),
        }
