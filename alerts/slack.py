"""The ``slack`` notifier: one Block Kit message per alert, to an incoming webhook or, with a
bot token, through the Web API into threads.

Two modes, one of them per notifier:

* ``{type: slack, webhook_url: ${SLACK_WEBHOOK_URL}}``: an incoming webhook. A story's
  follow-up (``kind: update``) is a compact two-block message ("Also reported by ABC News —
  3 sources: …", the new item linked): incoming webhooks cannot post into a thread.
* ``{type: slack, token: ${SLACK_BOT_TOKEN}, channel: "#ukraine-desk"}`` (optional
  ``api_url``, default ``https://slack.com/api/``; ``reply_broadcast``, default false): a
  ``chat.postMessage`` per alert. The story's first alert is a top-level message whose ``ts``
  is kept in Redis (``alerts.threads``); each follow-up is a reply in its thread
  (``thread_ts``; with ``reply_broadcast`` also shown in the channel). Slack answers HTTP 200
  with ``ok: false`` for most errors: ``ratelimited`` (or HTTP 429) and Slack's own
  transient errors are recoverable, after ``Retry-After``; ``invalid_auth``,
  ``channel_not_found``, ``not_in_channel``, ``is_archived`` and every other code are
  permanent and dead-lettered with the code. The token is a secret: sent in the
  ``Authorization`` header, never logged, never in an error.

Every piece of feed text is escaped for mrkdwn (``& < >``), so an item titled ``<!channel>``
pings nobody and ``<http://evil|click>`` forges no link. Links are shown only for http(s) URLs.
Slack accepts about one message per second per webhook: sends to one webhook URL are paced
(queued behind an ``asyncio.Lock``, spaced by ``min_interval``), never dropped.

One attempt per ``send``; retries are the dispatcher's job. Status mapping: see
``alerts.httperrors``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from alerts.base import Notifier, NotifierOptions
from alerts.escape import (
    find_spans,
    fit,
    highlight_needles,
    more_rules,
    one_line,
    published_text,
    render_spans,
    rules_text,
    safe_link,
    slack_escape,
    slack_link_target,
    story_sources,
    truncate,
)
from alerts.httperrors import error_for_exception, parse_retry_after, post, protect, scrub
from alerts.wire import Alert
from daemon.errors import NotifyError

log = logging.getLogger(__name__)
T = TypeVar("T")

HEADER_MAX = 150
SECTION_MAX = 3000
TEXT_MAX = 3000
BLOCKS_MAX = 50
_TITLE_RAW_MAX = 500  # a link label longer than this helps nobody
_FEED_RAW_MAX = 200


# Web API error codes worth another try (https://api.slack.com/methods/chat.postMessage).
RECOVERABLE_CODES = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_CODE = re.compile(r"[a-z0-9_]{1,64}")


class SlackOptions(NotifierOptions):
    model_config = ConfigDict(hide_input_in_errors=True)

    webhook_url: SecretStr | None = None
    token: SecretStr | None = None
    channel: str | None = None
    api_url: str = "https://slack.com/api/"
    reply_broadcast: bool = False
    timeout: float = Field(default=10.0, gt=0)
    min_interval: float = Field(default=1.0, ge=0)
    username: str | None = None
    icon_emoji: str | None = None
    icon_url: str | None = None

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and safe_link(value.get_secret_value()) is None:
            raise ValueError("must be an absolute http(s) URL")
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if safe_link(value) is None:
            raise ValueError("must be an absolute http(s) URL")
        return value if value.endswith("/") else value + "/"

    @model_validator(mode="after")
    def _one_mode(self) -> SlackOptions:
        if (self.webhook_url is None) == (self.token is None):
            raise ValueError("set either webhook_url, or token and channel")
        if self.token is not None and not self.channel:
            raise ValueError("a bot token needs a channel (#name or an id)")
        if self.webhook_url is not None and self.channel is not None:
            raise ValueError("channel goes with a bot token; a webhook posts to its own channel")
        return self


# --- message ----------------------------------------------------------------------------------


def header_text(alert: Alert) -> str:
    """``[HIGH] rule title`` (plain text, one line, at most 150 characters)."""
    kind = "" if alert.kind == "new" else f" {alert.kind}:"
    return truncate(
        one_line(f"[{alert.rule.severity.upper()}]{kind} {alert.rule.title}{more_rules(alert)}"),
        HEADER_MAX,
    )


def _title_section(alert: Alert) -> str:
    link = safe_link(alert.item.link)
    title = truncate(one_line(alert.item.title), _TITLE_RAW_MAX) or "(untitled)"
    feed = slack_escape(truncate(one_line(alert.item.feed), _FEED_RAW_MAX))
    meta = f"\n{feed} · {published_text(alert)}"

    def render(raw: str) -> str:
        label = slack_escape(raw)
        head = f"*<{slack_link_target(link)}|{label}>*" if link else f"*{label}*"
        return head + meta

    return fit(title, render, SECTION_MAX)


def _excerpt_section(alert: Alert) -> str:
    needles = highlight_needles(alert)

    def render(raw: str) -> str:
        return render_spans(raw, find_spans(raw, needles), slack_escape, lambda s: f"*{s}*")

    return fit(alert.item.excerpt.strip(), render, SECTION_MAX)


def _context(alert: Alert) -> str:
    terms = ", ".join(sorted({one_line(m.term) for m in alert.matches}, key=str.casefold))
    raw = f"{rules_text(alert)} · matched: {terms or '-'}"
    return fit(raw, slack_escape, SECTION_MAX)


def follow_up_blocks(alert: Alert) -> tuple[str, list[dict[str, Any]]]:
    """A story's follow-up (``kind: update``) as a compact message: who else reported it,
    how many sources, the new item linked. An incoming webhook cannot thread replies, so the
    context names the first alert instead. Returns (fallback text, blocks)."""
    count, names = story_sources(alert)
    feed = truncate(one_line(alert.item.feed), _FEED_RAW_MAX)
    plural = "source" if count == 1 else "sources"
    head = f"Also reported by {feed} — {count} {plural}"
    link = safe_link(alert.item.link)
    title = truncate(one_line(alert.item.title), _TITLE_RAW_MAX) or "(untitled)"

    def render(raw_names: str) -> str:
        text = f"*{slack_escape(head)}*: {slack_escape(raw_names)}\n"
        label = slack_escape(title)
        return text + (f"<{slack_link_target(link)}|{label}>" if link else label)

    section = fit(", ".join(names), render, SECTION_MAX)
    first = one_line(str(alert.extra.get("first_title") or ""))
    about = f"follow-up to “{truncate(first, _TITLE_RAW_MAX)}”" if first else "follow-up"
    raw_context = (
        f"[{alert.rule.severity.upper()}] {one_line(alert.rule.title)} · {about}"
        f" · {rules_text(alert).lower()}"
    )
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": section}},
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": fit(raw_context, slack_escape, SECTION_MAX)}],
        },
    ]
    fallback = fit(f"{head}: {one_line(alert.item.title)}", slack_escape, TEXT_MAX)
    return fallback, blocks


def build_payload(
    alert: Alert,
    *,
    username: str | None = None,
    icon_emoji: str | None = None,
    icon_url: str | None = None,
) -> dict[str, Any]:
    """The incoming-webhook JSON for one alert: Block Kit blocks plus a ``text`` fallback
    (a story's follow-up: the compact ``follow_up_blocks``)."""
    if alert.kind == "update":
        text, compact = follow_up_blocks(alert)
        return _with_identity({"text": text, "blocks": compact}, username, icon_emoji, icon_url)
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": header_text(alert), "emoji": True},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _title_section(alert)}},
    ]
    excerpt = _excerpt_section(alert)
    if excerpt:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": excerpt}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _context(alert)}]})
    fallback = f"[{alert.rule.severity.upper()}] {one_line(alert.rule.title)}: " + one_line(
        alert.item.title
    )
    payload: dict[str, Any] = {
        "text": fit(fallback, slack_escape, TEXT_MAX),
        "blocks": blocks[:BLOCKS_MAX],
    }
    return _with_identity(payload, username, icon_emoji, icon_url)


def _with_identity(
    payload: dict[str, Any], username: str | None, icon_emoji: str | None, icon_url: str | None
) -> dict[str, Any]:
    if username:
        payload["username"] = username
    if icon_emoji:
        payload["icon_emoji"] = icon_emoji
    if icon_url:
        payload["icon_url"] = icon_url
    return payload


# --- pacing -----------------------------------------------------------------------------------


class Pacer:
    """Serialises the sends to one webhook and spaces their starts by ``min_interval``."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.not_before = float("-inf")


# Pacers are per event loop (an asyncio.Lock belongs to one loop) and per webhook URL, so two
# notifier instances sharing a webhook share its budget. Keys are hashes, not URLs.
_pacers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Pacer]] = (
    weakref.WeakKeyDictionary()
)


def pacer_for(url: str) -> Pacer:
    """The pacer of ``url`` in the running event loop."""
    per_loop = _pacers.setdefault(asyncio.get_running_loop(), {})
    key = hashlib.sha256(url.encode()).hexdigest()
    pacer = per_loop.get(key)
    if pacer is None:
        pacer = per_loop[key] = Pacer()
    return pacer


# --- notifier ---------------------------------------------------------------------------------


class SlackNotifier(Notifier):
    Options = SlackOptions

    def __init__(
        self,
        name: str,
        options: NotifierOptions,
        *,
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(name, options, http=http)
        assert isinstance(options, SlackOptions)
        self.opts = options
        self._clock = clock
        self._sleep = sleep
        for secret in (options.webhook_url, options.token):
            if secret is not None:
                protect(secret.get_secret_value())

    def payload(self, alert: Alert) -> dict[str, Any]:
        return build_payload(
            alert,
            username=self.opts.username,
            icon_emoji=self.opts.icon_emoji,
            icon_url=self.opts.icon_url,
        )

    async def send(self, alert: Alert) -> None:
        if self.opts.token is not None:
            await self._send_api(alert, self.opts.token.get_secret_value())
            return
        assert self.opts.webhook_url is not None
        body = json.dumps(self.payload(alert), ensure_ascii=False).encode()
        url = self.opts.webhook_url.get_secret_value()
        await self._paced(
            url,
            alert,
            lambda: post(
                self.http,
                "Slack",
                url,
                content=body,
                headers={"Content-Type": "application/json; charset=utf-8"},
                request_timeout=self.opts.timeout,
            ),
        )
        log.debug("slack %s: delivered alert %s", self.name, alert.id)

    async def _paced(self, key: str, alert: Alert, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` behind the pacer of ``key`` (a webhook URL, or API URL and channel):
        one send at a time, ``min_interval`` apart, longer after a rate limit."""
        pacer = pacer_for(key)
        async with pacer.lock:
            wait = pacer.not_before - self._clock()
            if wait > 0:
                await self._sleep(wait)
            pacer.not_before = self._clock() + self.opts.min_interval
            try:
                return await call()
            except NotifyError as e:
                if e.reason == "rate_limited" and e.retry_after:
                    pacer.not_before = max(pacer.not_before, self._clock() + e.retry_after)
                log.debug("slack %s: alert %s not delivered: %s", self.name, alert.id, e.message)
                raise

    # -- bot token: chat.postMessage, threads ------------------------------------------------
    async def _send_api(self, alert: Alert, token: str) -> None:
        payload = {"channel": self.opts.channel, **self.payload(alert)}
        first = alert.extra.get("first_alert_id")
        if alert.kind == "update" and isinstance(first, str) and self.threads is not None:
            thread = await self.threads.get(first)
            if thread:
                payload["thread_ts"] = thread
                payload["reply_broadcast"] = self.opts.reply_broadcast
        body = json.dumps(payload, ensure_ascii=False).encode()
        key = f"{self.opts.api_url} {self.opts.channel}"
        ts = await self._paced(key, alert, lambda: self._post_message(body, token))
        if alert.kind == "new" and ts and self.threads is not None:
            await self.threads.put(alert.id, ts)
        log.debug("slack %s: delivered alert %s", self.name, alert.id)

    async def _post_message(self, body: bytes, token: str) -> str | None:
        """One ``chat.postMessage``: the message's ``ts``, or NotifyError."""
        url = f"{self.opts.api_url}chat.postMessage"
        try:
            response = await self.http.post(
                url,
                content=body,
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "Authorization": f"Bearer {token}",
                },
                timeout=self.opts.timeout,
                follow_redirects=False,
            )
        except (httpx.HTTPError, httpx.InvalidURL) as e:
            raise error_for_exception("Slack", e, secrets=[token]) from None
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if response.status_code == 429:
            raise NotifyError(
                "Slack answered HTTP 429", recoverable=True, reason="rate_limited",
                retry_after=retry_after,
            )  # fmt: skip
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code != 200 or not isinstance(answer, dict):
            recoverable = response.status_code >= 500 or response.status_code == 408
            raise NotifyError(
                f"Slack answered HTTP {response.status_code}", recoverable=recoverable,
                reason="server" if recoverable else "client", retry_after=retry_after,
            )  # fmt: skip
        if answer.get("ok") is True:
            ts = answer.get("ts")
            return ts if isinstance(ts, str) else None
        raw = scrub(str(answer.get("error") or "unknown"), [token])
        code = raw if _CODE.fullmatch(raw) else "unknown"
        message = f"Slack API error: {code}"
        if code in RECOVERABLE_CODES:
            reason = "rate_limited" if code == "ratelimited" else "server"
            raise NotifyError(message, recoverable=True, reason=reason, retry_after=retry_after)
        auth = code in ("invalid_auth", "not_authed", "token_revoked", "account_inactive")
        raise NotifyError(message, recoverable=False, reason="auth" if auth else "client")
