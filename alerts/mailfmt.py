"""Alerts as an email message: pure functions, no I/O (the ``email`` notifier sends the result).

:func:`build_message` takes a sequence of alerts so a later digest can reuse it; the notifier
passes one. Feed text is escaped for HTML (``html.escape(quote=True)``), links are emitted only
for http(s) URLs, and the Subject is built with :func:`alerts.escape.header_text` (no control
characters, RFC 2047 encoded-words defused — CVE-2024-6923).

A story's follow-up (``kind: update``) is a reply to the mail of its first alert:
``In-Reply-To``/``References`` carry that mail's Message-ID (derived from ``first_alert_id``
as ``message_id`` derives it) and the Subject is ``Re:`` and the first mail's subject. When
the first alert went out in a digest, its mail had another Message-ID: the reply then starts
a thread of its own.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from alerts.escape import (
    header_text,
    more_rules,
    one_line,
    published_text,
    rules_text,
    safe_link,
    truncate,
)
from alerts.mailhtml import html_part
from alerts.wire import Alert, severity_rank

SUBJECT_MAX = 200
POLICY = policy.SMTP  # CRLF line endings, RFC-conformant folding
_HOSTNAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_FALLBACK_DOMAIN = "feedwatch.invalid"


def _terms(alert: Alert) -> str:
    return ", ".join(sorted({one_line(m.term) for m in alert.matches}, key=str.casefold)) or "-"


def _headline(alert: Alert) -> str:
    kind = "" if alert.kind == "new" else f" {alert.kind}:"
    return f"[{alert.rule.severity.upper()}]{kind} {alert.rule.title}{more_rules(alert)}"


def _story_line(a: Alert) -> str:
    """``Also reported by kyiv — 3 sources: wire, kyiv, desk`` for a follow-up; ``Sources:
    wire, kyiv`` for a first alert of a story several feeds carry; else ``""``."""
    names = a.extra.get("sources")
    listed = ", ".join(one_line(str(n)) for n in names) if isinstance(names, list) else ""
    count = a.extra.get("source_count")
    n = count if isinstance(count, int) else 0
    if a.kind == "update":
        plural = "source" if n == 1 else "sources"
        return f"Also reported by {one_line(a.item.feed)} — {n} {plural}: {listed}"
    return f"Sources: {listed}" if n > 1 else ""


def subject(alerts: Sequence[Alert], prefix: str = "[feedwatch]") -> str:
    """One header-safe line: ``[feedwatch] [HIGH] rule title: item title`` (≤ 200 chars).

    A story's follow-up replies to its first alert: ``Re:`` and that mail's subject (the first
    alert's item title travels as ``first_title``), so clients that thread by subject agree."""
    if len(alerts) == 1 and alerts[0].kind == "update":
        a = alerts[0]
        first = a.extra.get("first_title")
        title = first if isinstance(first, str) and first else a.item.title
        head = f"[{a.rule.severity.upper()}] {a.rule.title}"
        text = f"Re: {prefix} {head}: {title}"
    elif len(alerts) == 1:
        a = alerts[0]
        text = f"{prefix} {_headline(a)}: {a.item.title}"
    else:
        top = max(alerts, key=lambda a: severity_rank(a.rule.severity))
        text = f"{prefix} {len(alerts)} alerts, highest [{top.rule.severity.upper()}]"
    return truncate(header_text(text), SUBJECT_MAX)


def text_part(alerts: Sequence[Alert]) -> str:
    """The text/plain body: each alert as a few labelled lines."""
    blocks = []
    for a in alerts:
        lines = [one_line(_headline(a)), "", one_line(a.item.title) or "(untitled)"]
        if story := _story_line(a):
            lines[1:1] = [story]
        link = safe_link(a.item.link)
        if link:
            lines.append(link)
        lines.append(f"{one_line(a.item.feed)} · {published_text(a)}")
        excerpt = one_line(a.item.excerpt)
        if excerpt:
            lines += ["", excerpt]
        lines += ["", f"Matched: {_terms(a)}", rules_text(a).replace(" ", ": ", 1)]
        blocks.append("\n".join(lines))
    return ("\n\n" + "-" * 40 + "\n\n").join(blocks) + "\n"


def message_domain(from_addr: str) -> str:
    """The domain of the sender address, for Message-IDs; a reserved name if unusable."""
    _, at, domain = parseaddr(from_addr)[1].rpartition("@")
    return domain if at and _HOSTNAME.match(domain) else _FALLBACK_DOMAIN


def message_id(alerts: Sequence[Alert], domain: str) -> str:
    """A Message-ID derived from the alert ids: a retried send carries the same id, so mail
    systems that deduplicate by Message-ID show it once."""
    return message_id_for([a.id for a in alerts], domain)


def message_id_for(alert_ids: Sequence[str], domain: str) -> str:
    """The Message-ID of the mail that carries these alert ids (``message_id``)."""
    digest = hashlib.sha256("\n".join(alert_ids).encode()).hexdigest()[:32]
    return f"<feedwatch.{digest}@{domain}>"


def build_message(
    alerts: Sequence[Alert],
    *,
    from_addr: str,
    to: Sequence[str],
    subject_prefix: str = "[feedwatch]",
    now: datetime | None = None,
) -> EmailMessage:
    """A ``multipart/alternative`` message (text/plain + text/html) for ``alerts``.

    ``from_addr`` and ``to`` come from validated configuration. ``now`` sets the Date header
    (UTC now by default).
    """
    if not alerts:
        raise ValueError("build_message needs at least one alert")
    msg = EmailMessage(policy=POLICY)
    msg["From"] = from_addr
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject(alerts, header_text(subject_prefix))
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = message_id(alerts, message_domain(from_addr))
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
    if len(alerts) == 1:
        msg["X-Feedwatch-Alert-Id"] = truncate(header_text(alerts[0].id), 200)
        first = alerts[0].extra.get("first_alert_id")
        if alerts[0].kind == "update" and isinstance(first, str) and first:
            # Thread under the story's first alert (its mail's Message-ID comes from its id).
            parent = message_id_for([first], message_domain(from_addr))
            msg["In-Reply-To"] = parent
            msg["References"] = parent
    # quoted-printable keeps the message 7-bit clean whatever the server's 8BITMIME support
    msg.set_content(text_part(alerts), subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html_part(alerts), subtype="html", charset="utf-8", cte="quoted-printable")
    return msg
