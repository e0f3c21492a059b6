"""The alert wire format, version 1: what travels through the Redis Stream to notifiers.

Notifiers depend only on this module. The JSON form is documented in ``alerts/README.md``;
``Alert.to_json`` / ``Alert.from_json`` are its only writer and reader. Unknown keys are ignored
when reading, so newer producers can add fields without breaking older consumers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

WIRE_VERSION = 1
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
class Alert:
    """One alert: a rule matched an item.

    ``id`` is deterministic (rule and story, or rule, story and item for a follow-up), so
    publishing the same match twice is one alert. ``notify`` names the notifier instances this
    alert is routed to. ``kind`` is ``new`` (the rule's first alert for a story) or ``update``
    (a follow-up: a later item of the same story). Story fields (``story_id``, ``sources``,
    ``source_count``, ``first_alert_id``, ``first_title``, ``held_back``) travel in ``extra``.
    """

    id: str
    rule: AlertRule
    item: AlertItem
    matches: tuple[AlertMatch, ...]
    created: datetime
    notify: tuple[str, ...] = ()
    kind: str = "new"
    extra: dict[str, Any] = field(default_factory=dict)

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
            "matches": [
                {"term": m.term, "field": m.field, "start": m.start, "end": m.end}
                for m in self.matches
            ],
            "notify": list(self.notify),
            **self.extra,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Alert:
        v = d.get("v")
        if v != WIRE_VERSION:
            raise ValueError(
                f"unsupported alert wire version {v!r} (this reader knows {WIRE_VERSION})"
            )
        known = {"v", "id", "kind", "created", "rule", "item", "matches", "notify"}
        r, i = d["rule"], d["item"]
        return cls(
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
            matches=tuple(
                AlertMatch(
                    term=str(m["term"]),
                    field=str(m["field"]),
                    start=int(m["start"]),
                    end=int(m["end"]),
                )
                for m in d.get("matches", ())
            ),
            notify=tuple(str(n) for n in d.get("notify", ())),
            extra={k: v for k, v in d.items() if k not in known},
        )

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
            "matches": [
                {"term": m.term, "field": m.field, "start": m.start, "end": m.end}
                for m in self.matches
            ],
            **self.extra,
        }
