"""The ``console`` notifier: one readable line, or one JSON object, per alert on stdout.

A story's follow-up (``kind: update``) reads ``[HIGH] update kursk: also reported by kyiv — 3
sources: <title> | …``; in JSON its ``kind``, ``story_id``, ``sources``… are keys of the
object (``Alert.console_dict`` merges ``extra``)."""

from __future__ import annotations

import json
import sys
from typing import Literal, TextIO

import httpx

from alerts.base import Notifier, NotifierOptions
from alerts.escape import more_rules
from alerts.wire import Alert


class ConsoleOptions(NotifierOptions):
    format: Literal["text", "json"] = "text"
    stream: Literal["stdout", "stderr"] = "stdout"


def story_note(alert: Alert) -> str:
    """``also reported by X — N sources: `` for a follow-up; ``N sources (a, b): `` for a
    first alert whose story several feeds carried already; else nothing."""
    count = alert.extra.get("source_count")
    n = count if isinstance(count, int) else 0
    plural = "source" if n == 1 else "sources"
    if alert.kind == "update":
        return f"also reported by {alert.item.feed} — {n} {plural}: "
    sources = alert.extra.get("sources")
    if n > 1 and isinstance(sources, list):
        return f"{n} {plural} ({', '.join(map(str, sources))}): "
    return ""


def _one_line(text: str) -> str:
    """Feed text on one line: control characters (CR, LF, ESC…) become spaces."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


class ConsoleNotifier(Notifier):
    Options = ConsoleOptions

    def __init__(self, name: str, options: NotifierOptions, *, http: httpx.AsyncClient) -> None:
        super().__init__(name, options, http=http)
        assert isinstance(options, ConsoleOptions)
        self.opts = options

    def _out(self) -> TextIO:
        return sys.stdout if self.opts.stream == "stdout" else sys.stderr

    def render(self, alert: Alert) -> str:
        if self.opts.format == "json":
            return json.dumps(alert.console_dict(), ensure_ascii=False)
        terms = sorted({m.term for m in alert.matches})
        when = (
            alert.item.published.strftime("%Y-%m-%d %H:%M UTC")
            if alert.item.published
            else "undated"
        )
        kind = "" if alert.kind == "new" else f" {alert.kind}"
        return _one_line(
            f"[{alert.rule.severity.upper()}]{kind} {alert.rule.id}{more_rules(alert)}: "
            f"{story_note(alert)}"
            f"{alert.item.title}"
            f" | {alert.item.feed} | {when} | {alert.item.link or '-'}"
            f" | matched: {', '.join(terms) or '-'}"
        )

    async def send(self, alert: Alert) -> None:
        out = self._out()
        out.write(self.render(alert) + "\n")
        out.flush()
