"""The ``console`` notifier: one readable line, or one JSON object, per alert on stdout."""

from __future__ import annotations

import json
import sys
from typing import Literal, TextIO

import httpx

from alerts.base import Notifier, NotifierOptions
from alerts.wire import Alert


class ConsoleOptions(NotifierOptions):
    format: Literal["text", "json"] = "text"
    stream: Literal["stdout", "stderr"] = "stdout"


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
            f"[{alert.rule.severity.upper()}]{kind} {alert.rule.id}: {alert.item.title}"
            f" | {alert.item.feed} | {when} | {alert.item.link or '-'}"
            f" | matched: {', '.join(terms) or '-'}"
        )

    async def send(self, alert: Alert) -> None:
        out = self._out()
        out.write(self.render(alert) + "\n")
        out.flush()
