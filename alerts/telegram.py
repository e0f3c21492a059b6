"""The ``telegram`` notifier: one HTML message per alert through the Telegram Bot API.

``{type: telegram, bot_token: ${TELEGRAM_BOT_TOKEN}, chat_id: "@channel" | -1001234567890}``
(optional ``message_thread_id`` for a forum topic, ``api_url``, default
``https://api.telegram.org``, ``link_preview``, default false). Each alert is a
``sendMessage`` with ``parse_mode: HTML``: severity and rule, the title linked, outlet and
time, the excerpt with the matched words in bold, the story's sources and the matched terms.
Every piece of feed text is escaped for Telegram's HTML (``& < >``, and ``"`` inside a link),
so no tag from a feed survives; links are only http(s) ones. A message never exceeds
Telegram's 4,096 characters: the excerpt, then the title, are shortened first.

``digest: 15m`` gathers the alerts of a window into one message (``send_digest``): a line per
alert, grouped by story (first alerts, then their follow-ups), cut with "… and N more" at the
length limit.

A story's follow-up (``kind: update``) replies to the story's first message in the chat
(``reply_parameters``, the message id kept in Redis by ``alerts.threads``); if that message
is unknown (expired, or sent before) it is a message of its own.

Errors: HTTP 429 is recoverable after Telegram's ``parameters.retry_after`` (or
``Retry-After``); 5xx, timeouts and transport errors are recoverable; 400, 401, 403, 404
(chat not found, bot blocked or not a member, bad token) are permanent and dead-lettered with
Telegram's description. The bot token sits in the URL path: it is registered as a secret
(httpx's own log lines redact it) and scrubbed from every error.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import ConfigDict, Field, SecretStr, field_validator

from alerts.base import Notifier, NotifierOptions
from alerts.escape import (
    find_spans,
    highlight_needles,
    more_rules,
    one_line,
    published_text,
    render_spans,
    rules_text,
    safe_link,
    story_sources,
)
from alerts.httperrors import error_for_exception, parse_retry_after, protect, scrub
from alerts.wire import Alert
from daemon.errors import NotifyError

log = logging.getLogger(__name__)

MESSAGE_MAX = 4096
_CHAT = re.compile(r"@[A-Za-z][A-Za-z0-9_]{3,31}|-?[0-9]{1,20}")
_DESCRIPTION = re.compile(r"[^A-Za-z0-9 :_.,()'-]")


class TelegramOptions(NotifierOptions):
    model_config = ConfigDict(hide_input_in_errors=True)

    bot_token: SecretStr
    chat_id: str
    message_thread_id: int | None = Field(default=None, gt=0)
    api_url: str = "https://api.telegram.org"
    link_preview: bool = False
    timeout: float = Field(default=10.0, gt=0)

    @field_validator("chat_id", mode="before")
    @classmethod
    def _chat(cls, value: object) -> str:
        text = str(value).strip() if isinstance(value, str | int) else ""
        if not _CHAT.fullmatch(text):
            raise ValueError("expected @channelname or a numeric chat id such as -1001234567890")
        return text

    @field_validator("bot_token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        if not re.fullmatch(r"[0-9]+:[A-Za-z0-9_-]{20,}", value.get_secret_value()):
            raise ValueError("expected a bot token as BotFather gives it (123456:ABC…)")
        return value

    @field_validator("api_url")
    @classmethod
    def _api(cls, value: str) -> str:
        if safe_link(value) is None:
            raise ValueError("must be an absolute http(s) URL")
        return value.rstrip("/")


# --- message ----------------------------------------------------------------------------------


def _e(text: str) -> str:
    """Feed text for Telegram HTML: one line, ``& < >`` escaped."""
    return html.escape(one_line(text), quote=False)


def _title(alert: Alert, limit: int) -> str:
    title = one_line(alert.item.title)[:limit] or "(untitled)"
    link = safe_link(alert.item.link)
    if link is None:
        return f"<b>{_e(title)}</b>"
    return f'<a href="{html.escape(link, quote=True)}">{_e(title)}</a>'


def _excerpt(alert: Alert, limit: int) -> str:
    raw = one_line(alert.item.excerpt)[:limit]
    spans = find_spans(raw, highlight_needles(alert))
    return render_spans(raw, spans, lambda s: html.escape(s, quote=False), lambda s: f"<b>{s}</b>")


def render(alert: Alert) -> str:
    """The message's HTML, at most MESSAGE_MAX characters."""
    count, names = story_sources(alert)
    terms = ", ".join(sorted({one_line(m.term) for m in alert.matches}, key=str.casefold))
    severity = html.escape(alert.rule.severity.upper())
    if alert.kind == "update":
        plural = "source" if count == 1 else "sources"
        head = f"↪ <b>Also reported by {_e(alert.item.feed)}</b> — {count} {plural}"
    else:
        head = f"<b>[{severity}] {_e(alert.rule.title + more_rules(alert))}</b>"
    for title_max, excerpt_max in ((500, 1500), (300, 600), (200, 0)):
        lines = [
            head,
            _title(alert, title_max),
            f"<i>{_e(alert.item.feed)} · {published_text(alert)}</i>",
        ]
        if excerpt_max and alert.item.excerpt.strip():
            lines.append(_excerpt(alert, excerpt_max))
        if names:
            lines.append(f"Sources ({count}): {_e(', '.join(names))[:600]}")
        lines.append(f"{_e(rules_text(alert))[:600]} · matched: {_e(terms or '-')[:600]}")
        text = "\n".join(lines)
        if len(text) <= MESSAGE_MAX:
            return text
    return text[:MESSAGE_MAX]  # unreachable with the limits above; a safe cut regardless


def render_digest(alerts: Sequence[Alert]) -> str:
    """Several alerts as one message: a line each, a story's alerts together, at most
    MESSAGE_MAX characters."""
    stories: dict[str, list[Alert]] = {}
    for alert in alerts:
        key = str(alert.extra.get("story_id") or alert.extra.get("first_alert_id") or alert.id)
        stories.setdefault(key, []).append(alert)
    head = f"<b>feedwatch: {len(alerts)} alert{'s' if len(alerts) != 1 else ''}</b>"
    lines = [head]
    shown = 0
    for group in stories.values():
        for n, alert in enumerate(group):
            severity = html.escape(alert.rule.severity.upper())
            lead = "  ↪ " if n else f"• [{severity}] {_e(alert.rule.title)}: "
            line = f"{lead}{_title(alert, 200)} <i>({_e(alert.item.feed)})</i>"
            more = f"… and {len(alerts) - shown} more"
            if len("\n".join([*lines, line, more])) > MESSAGE_MAX:
                lines.append(more)
                return "\n".join(lines)
            lines.append(line)
            shown += 1
    return "\n".join(lines)


# --- notifier ---------------------------------------------------------------------------------


class TelegramNotifier(Notifier):
    Options = TelegramOptions

    def __init__(self, name: str, options: NotifierOptions, *, http: httpx.AsyncClient) -> None:
        super().__init__(name, options, http=http)
        assert isinstance(options, TelegramOptions)
        self.opts = options
        protect(options.bot_token.get_secret_value())

    @property
    def _url(self) -> str:
        return f"{self.opts.api_url}/bot{self.opts.bot_token.get_secret_value()}/sendMessage"

    def payload(self, alert: Alert, reply_to: int | None = None) -> dict[str, Any]:
        chat_id = self.opts.chat_id
        chat: str | int = int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id
        body: dict[str, Any] = {
            "chat_id": chat,
            "text": render(alert),
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": not self.opts.link_preview},
        }
        if self.opts.message_thread_id is not None:
            body["message_thread_id"] = self.opts.message_thread_id
        if reply_to is not None:
            body["reply_parameters"] = {
                "message_id": reply_to,
                "allow_sending_without_reply": True,
            }
        return body

    async def send(self, alert: Alert) -> None:
        reply_to = None
        first = alert.extra.get("first_alert_id")
        if alert.kind == "update" and isinstance(first, str) and self.threads is not None:
            ref = await self.threads.get(first)
            reply_to = int(ref) if ref and ref.isdigit() else None
        message_id = await self._post(self.payload(alert, reply_to))
        if alert.kind == "new" and message_id is not None and self.threads is not None:
            await self.threads.put(alert.id, str(message_id))
        log.debug("telegram %s: delivered alert %s", self.name, alert.id)

    async def send_digest(self, alerts: Sequence[Alert]) -> None:
        """Deliver ``alerts`` as one message, or raise NotifyError (the digest capability)."""
        payload = self.payload(alerts[0])
        payload["text"] = render_digest(alerts)
        await self._post(payload)
        log.debug("telegram %s: delivered a digest of %d alert(s)", self.name, len(alerts))

    async def _post(self, payload: dict[str, Any]) -> int | None:
        """One ``sendMessage``; the message id, or NotifyError."""
        secret = self.opts.bot_token.get_secret_value()
        try:
            response = await self.http.post(
                self._url,
                content=json.dumps(payload, ensure_ascii=False).encode(),
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=self.opts.timeout,
                follow_redirects=False,
            )
        except (httpx.HTTPError, httpx.InvalidURL) as e:
            raise error_for_exception("Telegram", e, secrets=[self._url, secret]) from None
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        status = response.status_code
        if status == 200 and answer.get("ok") is True:
            result = answer.get("result")
            mid = result.get("message_id") if isinstance(result, dict) else None
            return mid if isinstance(mid, int) else None
        description = scrub(str(answer.get("description") or ""), [secret])
        detail = _DESCRIPTION.sub("", description)[:120]
        message = f"Telegram answered HTTP {status}" + (f" ({detail})" if detail else "")
        if status == 429:
            params = answer.get("parameters")
            after = params.get("retry_after") if isinstance(params, dict) else None
            wait = float(after) if isinstance(after, int | float) and after >= 0 else None
            wait = (
                wait if wait is not None else parse_retry_after(response.headers.get("retry-after"))
            )
            raise NotifyError(message, recoverable=True, reason="rate_limited", retry_after=wait)
        if status >= 500 or status == 408:
            reason = "timeout" if status == 408 else "server"
            raise NotifyError(message, recoverable=True, reason=reason)
        reason = "auth" if status == 401 else "client"
        raise NotifyError(message, recoverable=False, reason=reason)
