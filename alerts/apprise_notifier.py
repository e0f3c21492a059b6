"""The ``apprise`` notifier: an alert to ~100 services through Apprise (optional extra).

``pip install 'feedwatch[apprise]'``, then ``{type: apprise, urls: ["discord://…",
"ntfys://…", "msteams://…"]}``. Each alert becomes one Markdown message (``format: text``
for plain text): severity and rule in the title; the item linked, outlet and time, the
excerpt, the story's sources and the matched terms in the body. Feed text is escaped for
Markdown, so a title cannot forge a link or a heading.

Apprise's limits, and so this notifier's: no threads or replies (a follow-up is a message of
its own that says "also reported by"), no delivery receipt per service: Apprise says only
whether every URL accepted the message. A failure of any URL is a recoverable failure of the
whole notifier (retried with backoff, dead-lettered after ``max_attempts``), so a URL that
did accept may get the message again on a retry; split URLs into several notifiers where
that matters. The URLs are secrets (they carry tokens, often in the host part): never logged
(Apprise's own logger is filtered), never in an error.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from typing import Any, Literal

import httpx
from pydantic import ConfigDict, Field, SecretStr, field_validator

from alerts.base import Notifier, NotifierOptions
from alerts.escape import more_rules, one_line, published_text, rules_text, safe_link, story_sources
from alerts.httperrors import protect, scrub
from alerts.wire import Alert
from daemon.errors import NotifyError

log = logging.getLogger(__name__)

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")
BODY_MAX = 3500


class AppriseOptions(NotifierOptions):
    model_config = ConfigDict(hide_input_in_errors=True)

    urls: list[SecretStr] = Field(min_length=1)
    format: Literal["markdown", "text"] = "markdown"
    timeout: float = Field(default=30.0, gt=0)

    @field_validator("urls")
    @classmethod
    def _urls(cls, value: list[SecretStr]) -> list[SecretStr]:
        for url in value:
            if "://" not in url.get_secret_value():
                raise ValueError("each URL must be an Apprise URL such as ntfys://topic")
        return value


def _md(text: str) -> str:
    """Feed text for Markdown: one line, every special character escaped."""
    return _MARKDOWN.sub(r"\\\1", one_line(text))


def render(alert: Alert, fmt: str = "markdown") -> tuple[str, str]:
    """(title, body) of the message."""
    esc = _md if fmt == "markdown" else one_line
    count, sources = story_sources(alert)
    severity = alert.rule.severity.upper()
    if alert.kind == "update":
        plural = "source" if count == 1 else "sources"
        title = f"[{severity}] Also reported by {one_line(alert.item.feed)} — {count} {plural}"
    else:
        title = f"[{severity}] {one_line(alert.rule.title)}{more_rules(alert)}"
    item_title = esc(alert.item.title[:500]) or "(untitled)"
    link = safe_link(alert.item.link)
    if link and fmt == "markdown":
        heading = f"[{item_title}](<{link.replace('>', '%3E')}>)"
    else:
        heading = f"{item_title}\n{link}" if link else item_title
    when = published_text(alert) if alert.item.published else ""
    lines = [heading, f"{esc(alert.item.feed)}{' · ' + when if when else ''}"]
    if alert.item.excerpt.strip():
        lines.append(esc(alert.item.excerpt[:1500]))
    if sources:
        lines.append(f"Sources ({count}): {esc(', '.join(sources))}")
    terms = ", ".join(sorted({one_line(m.term) for m in alert.matches}, key=str.casefold))
    lines.append(f"{esc(rules_text(alert))} · matched: {esc(terms or '-')}")
    return title[:250], "\n\n".join(lines)[:BODY_MAX]


def render_digest(alerts: Sequence[Alert], fmt: str = "markdown") -> tuple[str, str]:
    """(title, body) of one message listing ``alerts``, a line each."""
    esc = _md if fmt == "markdown" else one_line
    lines = []
    for alert in alerts:
        kind = "also reported" if alert.kind == "update" else alert.rule.severity.upper()
        link = safe_link(alert.item.link)
        where = f" — {link}" if link else ""
        line = f"- [{kind}] {esc(alert.rule.title)}: {esc(alert.item.title[:200])}"
        lines.append(f"{line} ({esc(alert.item.feed)}){where}")
    body = "\n".join(lines)
    if len(body) > BODY_MAX:
        body = body[: BODY_MAX - 20].rsplit("\n", 1)[0] + "\n- …"
    plural = "s" if len(alerts) != 1 else ""
    return f"feedwatch: {len(alerts)} alert{plural}", body


class AppriseNotifier(Notifier):
    Options = AppriseOptions

    def __init__(self, name: str, options: NotifierOptions, *, http: httpx.AsyncClient) -> None:
        super().__init__(name, options, http=http)
        assert isinstance(options, AppriseOptions)
        self.opts = options
        try:
            import apprise
        except ImportError as e:  # checked when the daemon starts, not at the first alert
            raise NotifyError(
                "the apprise notifier needs Apprise: pip install 'feedwatch[apprise]'",
                recoverable=False,
                reason="config",
            ) from e
        self._secrets = [u.get_secret_value() for u in options.urls]
        for url in self._secrets:
            protect(url, logger="apprise", whole=True)
        self._apprise: Any = apprise.Apprise()
        for url in self._secrets:
            if not self._apprise.add(url):
                raise NotifyError(
                    f"apprise notifier {name}: a URL Apprise does not understand",
                    recoverable=False,
                    reason="config",
                )
        self._format = (
            apprise.NotifyFormat.MARKDOWN
            if options.format == "markdown"
            else (apprise.NotifyFormat.TEXT)
        )

    async def send(self, alert: Alert) -> None:
        await self._notify(*render(alert, self.opts.format))
        log.debug("apprise %s: delivered alert %s", self.name, alert.id)

    async def send_digest(self, alerts: Sequence[Alert]) -> None:
        """Deliver ``alerts`` as one message, or raise NotifyError (the digest capability)."""
        await self._notify(*render_digest(alerts, self.opts.format))
        log.debug("apprise %s: delivered a digest of %d alert(s)", self.name, len(alerts))

    async def _notify(self, title: str, body: str) -> None:
        try:
            async with asyncio.timeout(self.opts.timeout):
                ok = await self._apprise.async_notify(
                    title=title, body=body, body_format=self._format
                )
        except TimeoutError:
            raise NotifyError(
                f"Apprise did not finish within {self.opts.timeout:g}s",
                recoverable=True,
                reason="timeout",
            ) from None
        except Exception as e:  # noqa: BLE001 - Apprise's plugins raise what theirs do
            detail = scrub(f"{type(e).__name__}: {e}", self._secrets)[:200]
            raise NotifyError(
                f"Apprise failed: {detail}", recoverable=True, reason="server"
            ) from None
        if not ok:
            raise NotifyError(
                "Apprise: at least one URL did not accept the message",
                recoverable=True,
                reason="server",
            )
