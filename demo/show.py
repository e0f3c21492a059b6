"""How ``make demo`` shows an alert: a few readable lines from the console notifier's JSON.

The demo runs feedwatch with a ``console`` notifier in ``format: json`` and renders each object
here: severity, rule, whether it is a new story or a follow-up, the headline, where and when it
was published, the passage that decided, the matched terms, and the story's sources.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

MAX_TERMS = 8


def _terms(matches: list[dict[str, Any]]) -> str:
    terms = list(dict.fromkeys(str(m.get("term", "")) for m in matches))
    more = f" (+{len(terms) - MAX_TERMS} more)" if len(terms) > MAX_TERMS else ""
    return ", ".join(terms[:MAX_TERMS]) + more


def _when(published: str | None) -> str:
    if not published:
        return "undated"
    return datetime.fromisoformat(published).strftime("%Y-%m-%d %H:%M %Z").strip()


def _clean(text: str) -> str:
    """Feed text on one line (control characters such as CR, LF and ESC become spaces)."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


def render(alert: dict[str, Any]) -> str:
    """The alert as a block of lines (no trailing newline)."""
    sources = [str(s) for s in alert.get("sources") or [alert.get("feed", "?")]]
    count = alert.get("source_count") or len(sources)
    if alert.get("kind") == "update":
        kind = f"follow-up: also reported by {alert.get('feed')}"
    else:
        kind = "new story"
    severity = str(alert.get("severity", "")).upper()
    lines = [
        f"[{severity}] {alert.get('rule_title')} ({alert.get('rule_id')}) · {kind}",
        f"  {alert.get('title') or '(no title)'}",
        f"  {alert.get('feed')} · {_when(alert.get('published'))} · {alert.get('link') or '-'}",
    ]
    if alert.get("kind") == "update" and alert.get("first_title"):
        lines.append(f"  first reported as: {alert['first_title']}")
    if alert.get("excerpt"):
        lines.append(f"  “{alert['excerpt']}”")
    rules = [str(r) for r in alert.get("rules") or []]
    if len(rules) > 1:  # one message for every rule the item matched
        lines.append(f"  rules: {', '.join(rules)}")
    lines.append(f"  matched: {_terms(alert.get('matches') or []) or '-'}")
    lines.append(f"  sources ({count}): {', '.join(sources)}")
    return "\n".join(_clean(line) for line in lines)


def render_line(line: str) -> str | None:
    """A console line rendered, or None when it is not an alert object (printed as it is)."""
    try:
        alert = json.loads(line)
    except ValueError:
        return None
    if not isinstance(alert, dict) or "rule_id" not in alert:
        return None
    return render(alert)
